"""Where a GitOps source may fetch from: the URL check at registration (`check_url`) and the local
roots check that registration and every sync share (`check_local`).

Pure functions, no database, no network: a URL is refused before anything stores or fetches it.
Messages never quote a remote URL, since whatever it carries (a token pasted by mistake) must not be
echoed back.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import urlsplit

from xcloudflow.compose.repo import is_url, under
from xcloudflow.errors import Invalid, Unprocessable
from xcloudflow.gitops.schemas import LocalObjectRef

LOCAL_ROOTS_SETTING = "XCF_GITOPS_LOCAL_ROOTS"
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")
_SCP_LIKE = re.compile(r"^(?P<user>[A-Za-z0-9._-]+)@(?P<host>[A-Za-z0-9._-]+):(?P<path>[^/].*|/.+)$")
_HOST = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?$")
_IPV6 = re.compile(r"^[0-9A-Fa-f:.]+$")
_ALLOWED = "https://host/path, ssh://[user@]host/path, user@host:path, file:///path or an absolute path"


def _bad_url(reason: str, field_name: str = "url") -> Unprocessable:
    """Never quotes the URL: whatever it carries (a token pasted by mistake) is not echoed."""
    return Unprocessable(f"url: {reason}", details={"field": field_name}, code="invalid_url")


def _check_remote(url: str, scheme: str) -> None:
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018  (raises on a port that is not a number)
    except ValueError:
        raise _bad_url(f"not a valid {scheme}:// URL (bad host or port)") from None
    host = parts.hostname or ""
    if not (_HOST.match(host) or (":" in host and _IPV6.match(host))):
        raise _bad_url(f"a {scheme}:// URL needs a host name ({_ALLOWED})")
    if parts.password is not None or (scheme == "https" and parts.username is not None):
        raise _bad_url(
            "must not carry credentials: store them in a secret (keys username, password) and name it in "
            "secretRef"
        )
    if parts.username is not None and parts.username.startswith("-"):
        raise _bad_url("the user name must not start with '-'")
    if not parts.path.strip("/"):
        raise _bad_url("names no repository (the path after the host is empty)")


def check_url(url: str, secret_ref: LocalObjectRef | None, *, local_roots: Sequence[Path]) -> str:
    """The source URL, or Unprocessable (422) saying why: https, ssh, user@host:path, and file:// or
    absolute local paths under the allowed roots only. http:// and git:// are refused (unencrypted, and
    git:// unauthenticated), as are git's `transport::address` helpers and anything option-like."""
    url = url.strip()
    if any(c.isspace() or ord(c) < 32 or ord(c) == 127 for c in url):
        raise _bad_url("must not contain spaces or control characters")
    match = _SCHEME.match(url)
    scheme = match.group(1).lower() if match else None
    local = False
    if scheme in ("https", "ssh"):
        _check_remote(url, scheme)
    elif scheme == "file":
        if not url[len("file://") :].startswith("/"):
            raise _bad_url("a file:// URL names an absolute local path (file:///srv/repo)")
        local = True
    elif scheme in ("http", "git"):
        raise _bad_url(
            f"{scheme}:// is not encrypted{' nor authenticated' if scheme == 'git' else ''}: use https:// or ssh://"
        )
    elif scheme is not None:
        raise _bad_url(f"scheme {scheme}:// is not allowed ({_ALLOWED})")
    elif "::" in url.split("/", 1)[0]:
        raise _bad_url(f"git remote helpers (transport::address) are not allowed ({_ALLOWED})")
    elif (scp := _SCP_LIKE.match(url)) is not None:
        if scp.group("user").startswith("-") or scp.group("host").startswith("-"):
            raise _bad_url("the user and host of user@host:path must not start with '-'")
    elif url.startswith("/"):
        local = True
    else:
        raise _bad_url(f"not a git URL nor an absolute path ({_ALLOWED})")
    if secret_ref is not None and scheme != "https":
        raise _bad_url(
            "secretRef (username/password) applies to https repositories; ssh uses the server's keys",
            "secretRef",
        )
    if local:
        try:
            check_local(url, local_roots)
        except Invalid as exc:
            raise _bad_url(exc.message) from None
    return url


def check_local(url: str, roots: Sequence[Path]) -> None:
    """Refuse local paths and file:// outside the organization's allowed roots, naming this domain's
    setting."""
    if url.lower().startswith("file://"):
        local = Path(url[len("file://") :])
    elif not is_url(url):
        local = Path(url)
    else:
        return
    if not under(local, roots):
        raise Invalid(
            f"repository {url}: local paths are refused unless under one of this organization's "
            f"allowed roots (setting {LOCAL_ROOTS_SETTING}; allowed: {', '.join(map(str, roots)) or 'none'})"
        )
