"""The plugin process's entry point: what `terraform-provider-conflux_v<version>` runs.

Terraform starts the executable and reads ONE handshake line from its stdout; anything printed to
stdout before it breaks the plugin, so this module prints nothing and logs only to stderr.

`tf` caches the TLS certificate of the plugin's gRPC server under `$HOME/.cache/tf-python-provider`
and fails when that directory cannot be created (CI runners and Terraform Cloud agents run with an
unwritable or missing HOME). It has no setting for the location, so `main` replaces the package's
path function with `cert_cache_path`, which tries XCF_PROVIDER_CACHE_DIR, XDG_CACHE_HOME, the
package's own place under HOME, then a private per-user directory in the temp dir, and as a last
resort a fresh private directory that is removed on exit (no caching, but the provider starts).
"""

from __future__ import annotations

import atexit
import contextlib
import os
import shutil
import stat
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path

CERT_FILE = "ssl_cert.json"


def _usable(directory: Path, *, private: bool) -> bool:
    try:
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        info = directory.lstat()
    except (OSError, RuntimeError):
        return False
    if not stat.S_ISDIR(info.st_mode) or not os.access(directory, os.W_OK | os.X_OK):
        return False
    if private:  # a shared temp dir: it must be ours and closed to others, never a planted symlink
        uid = getattr(os, "getuid", lambda: info.st_uid)()
        if info.st_uid != uid or info.st_mode & 0o077:
            return False
    cert = directory / CERT_FILE
    return not cert.exists() or os.access(cert, os.R_OK | os.W_OK)


def cert_cache_dirs(env: Mapping[str, str]) -> list[tuple[Path, bool]]:
    """Candidate cache directories, best first, each with whether it must be private to this user."""
    dirs: list[tuple[Path, bool]] = []
    if env.get("XCF_PROVIDER_CACHE_DIR"):
        dirs.append((Path(env["XCF_PROVIDER_CACHE_DIR"]), False))
    if env.get("XDG_CACHE_HOME"):
        dirs.append((Path(env["XDG_CACHE_HOME"]) / "tf-python-provider", False))
    with contextlib.suppress(RuntimeError):  # no HOME and no passwd entry
        dirs.append((Path.home() / ".cache" / "tf-python-provider", False))
    uid = getattr(os, "getuid", lambda: "user")()
    dirs.append((Path(tempfile.gettempdir()) / f"xcloudflow-tf-provider-{uid}", True))
    return dirs


def cert_cache_path(env: Mapping[str, str] | None = None) -> Path:
    """Where `tf` may read and write its cached certificate; the directory exists and is writable."""
    for directory, private in cert_cache_dirs(os.environ if env is None else env):
        if _usable(directory, private=private):
            return directory / CERT_FILE
    scratch = tempfile.mkdtemp(prefix="xcloudflow-tf-provider-")
    atexit.register(shutil.rmtree, scratch, ignore_errors=True)
    return Path(scratch) / CERT_FILE


def main(argv: list[str] | None = None) -> None:
    import tf.runner

    from xcloudflow.provider.provider import ConfluxProvider

    tf.runner._get_cert_cache_path = cert_cache_path
    tf.runner.run_provider(ConfluxProvider(), argv if argv is not None else sys.argv)


if __name__ == "__main__":
    main()
