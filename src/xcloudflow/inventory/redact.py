"""Redaction of sensitive values before anything reaches the inventory tables. Pure functions.

Replaced by a marker `(sensitive:<hmac>)`: values Terraform lists in `sensitive_attributes`, Pulumi
secret objects (the 4dabf18193072939515e22adb298388d signature) and values under keys that look
secret. The marker carries a keyed HMAC (per-organization salt) of the value, so a changed secret
still shows as a changed field, and the same secret is recognisable, without the value being
recoverable from the database.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from typing import Any

from xcloudflow.formats import PULUMI_SECRET_SIG

MARKER_PREFIX = "(sensitive:"
SECRET_KEY = re.compile(
    r"(password|passwd|passphrase|secret|token|private_?key|api_?key|access_?key|client_?secret|"
    r"credential|connection_?string|auth_?key|sas_?key|certificate_?key|kubeconfig|ssh_?key)",
    re.IGNORECASE,
)
# Keys that contain a secret word but hold no secret.
_NOT_SECRET = re.compile(r"(_arn|_id|_name|_version|_length|_enabled|_policy|_type|_expires?|_at)$", re.I)


def canonical(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str).encode()


def marker(value: Any, *, salt: bytes) -> str:
    return MARKER_PREFIX + hmac.new(salt, canonical(value), hashlib.sha256).hexdigest()[:16] + ")"


def _walk(value: Any, salt: bytes, secret: bool = False) -> Any:
    """Redact secret scalars; inside a container under a secret-looking key, every scalar is secret
    except those whose own key says it is an id, name, ARN, flag or similar."""
    if isinstance(value, dict):
        if PULUMI_SECRET_SIG in value:
            return marker(value.get("plaintext", value.get("ciphertext", value)), salt=salt)
        out = {}
        for k, v in value.items():
            key = str(k)
            if _NOT_SECRET.search(key):
                out[k] = _walk(v, salt, False)
            else:
                out[k] = _walk(v, salt, secret or bool(SECRET_KEY.search(key)))
        return out
    if isinstance(value, list):
        return [_walk(v, salt, secret) for v in value]
    if secret and value not in (None, "") and not isinstance(value, bool):
        return marker(value, salt=salt)
    return value


def _redact_path(doc: Any, path: list[str | int], salt: bytes) -> None:
    parent = doc
    for step in path[:-1]:
        try:
            parent = parent[step]
        except (KeyError, IndexError, TypeError):
            return
    last = path[-1]
    try:
        current = parent[last]
    except (KeyError, IndexError, TypeError):
        return
    if current is not None and not (isinstance(current, str) and current.startswith(MARKER_PREFIX)):
        parent[last] = marker(current, salt=salt)


def redact(
    attrs: dict[str, Any], *, salt: bytes, sensitive_paths: list[list[str | int]] | None = None
) -> dict[str, Any]:
    """A redacted copy of `attrs` (the walk builds new containers; the input is left alone)."""
    result = _walk(attrs, salt)
    assert isinstance(result, dict)
    for path in sensitive_paths or []:
        _redact_path(result, path, salt)
    return result


def attrs_hash(redacted: Any, *, salt: bytes) -> str:
    return hmac.new(salt, canonical(redacted), hashlib.sha256).hexdigest()


def keyed_hash(data: bytes, *, salt: bytes) -> str:
    """A keyed digest (BLAKE2b in keyed mode is a MAC, computed in one C call: this runs once per
    resource per version)."""
    return hashlib.blake2b(data, key=salt[:64], digest_size=32).hexdigest()
