"""The master keys of this installation.

The current master key comes from `XCF_ENCRYPTION_KEY` (base64 of 32 bytes) or, when that is unset, a
key file in the data directory generated on first start with mode 0600. Older master keys (from
`XCF_ENCRYPTION_OLD_KEYS` or `master.key.old-*` files left by `xcf keys rotate`) only unwrap data keys
that were not re-wrapped yet. Unwrapped data keys are cached in memory; they never change.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import threading
from pathlib import Path

from xcloudflow.errors import Invalid
from xcloudflow.settings import Settings

KEY_BYTES = 32


def key_id(key: bytes) -> str:
    return hashlib.sha256(key).hexdigest()[:16]


def decode_key(text: str, *, source: str) -> bytes:
    try:
        key = base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise Invalid(f"{source}: not valid base64") from exc
    if len(key) != KEY_BYTES:
        raise Invalid(f"{source}: a master key is 32 bytes (base64 of 32 random bytes), got {len(key)}")
    return key


def encode_key(key: bytes) -> str:
    return base64.b64encode(key).decode()


def write_key_file(path: Path, key: bytes) -> None:
    """Write a key file atomically with mode 0600."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(encode_key(key) + "\n")
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)


class Keyring:
    def __init__(self, current: bytes, old: list[bytes] | None = None) -> None:
        self.current = current
        self.current_id = key_id(current)
        self.by_id = {key_id(k): k for k in [*(old or []), current]}
        self._data_keys: dict[int, bytes] = {}
        self._lock = threading.Lock()

    def cached(self, data_key_id: int) -> bytes | None:
        return self._data_keys.get(data_key_id)

    def remember(self, data_key_id: int, key: bytes) -> None:
        with self._lock:
            self._data_keys[data_key_id] = key

    @classmethod
    def from_settings(cls, settings: Settings, *, create: bool = True) -> Keyring:
        old: list[bytes] = []
        if settings.encryption_old_keys is not None:
            for i, part in enumerate(settings.encryption_old_keys.get_secret_value().split(",")):
                if part.strip():
                    old.append(decode_key(part, source=f"XCF_ENCRYPTION_OLD_KEYS[{i}]"))
        path = settings.key_file
        for old_file in sorted(path.parent.glob(path.name + ".old-*")):
            old.append(decode_key(old_file.read_text(), source=str(old_file)))
        if settings.encryption_key is not None:
            current = decode_key(settings.encryption_key.get_secret_value(), source="XCF_ENCRYPTION_KEY")
        elif path.exists():
            current = decode_key(path.read_text(), source=str(path))
        elif create:
            current = os.urandom(KEY_BYTES)
            write_key_file(path, current)
        else:
            raise Invalid(f"no master key: set XCF_ENCRYPTION_KEY or create {path}")
        return cls(current, old)
