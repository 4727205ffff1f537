"""Config content at rest and in memory: sealing with the organization's data key, and the cache of
decrypted content that keeps resolve fast.

Sealed content is bound (AES-GCM associated data) to its organization, config id and version
number, so a blob copied to another version or config does not open. Versions are immutable, so the
cache keyed by version id never needs invalidating; it is bounded by total size (least recently used
entries go first). Never log or return content from here except to the caller that asked for it.
"""

from __future__ import annotations

import hashlib
import threading
import uuid
from collections import OrderedDict
from dataclasses import dataclass

from sqlalchemy.orm import Session

from xcloudflow.keys import service as keys
from xcloudflow.keys.keyring import Keyring

CACHE_MAX_BYTES = 64 * 1024 * 1024


def aad(org_id: int, config_id: uuid.UUID, number: int) -> bytes:
    return f"xcf:conflux:{org_id}:{config_id}:{number}".encode()


def checksum(content: str) -> str:
    return hashlib.sha256(content.encode()).hexdigest()


def seal(
    *, session: Session, keyring: Keyring, org_id: int, config_id: uuid.UUID, number: int, content: str
) -> tuple[int, bytes]:
    """(data key id, sealed blob) of `content` for version `number` of a config."""
    return keys.seal(
        session=session,
        keyring=keyring,
        org_id=org_id,
        aad=aad(org_id, config_id, number),
        chunks=[content.encode()],
    )


@dataclass(frozen=True)
class CachedVersion:
    number: int
    checksum: str
    content: str


class ContentCache:
    """Decrypted content by version id, at most `max_bytes` of text in all. Thread-safe."""

    def __init__(self, max_bytes: int = CACHE_MAX_BYTES) -> None:
        self.max_bytes = max_bytes
        self._items: OrderedDict[uuid.UUID, CachedVersion] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def get(self, version_id: uuid.UUID) -> CachedVersion | None:
        with self._lock:
            item = self._items.get(version_id)
            if item is not None:
                self._items.move_to_end(version_id)
            return item

    def put(self, version_id: uuid.UUID, item: CachedVersion) -> None:
        size = len(item.content)
        if size > self.max_bytes:
            return
        with self._lock:
            if version_id in self._items:
                return
            self._items[version_id] = item
            self._bytes += size
            while self._bytes > self.max_bytes:
                _, old = self._items.popitem(last=False)
                self._bytes -= len(old.content)

    def discard(self, version_id: uuid.UUID) -> None:
        with self._lock:
            old = self._items.pop(version_id, None)
            if old is not None:
                self._bytes -= len(old.content)


# One per process: the content of a version id is the same for every app and replica.
CACHE = ContentCache()


def open_content(
    *,
    session: Session,
    keyring: Keyring,
    org_id: int,
    config_id: uuid.UUID,
    version_id: uuid.UUID,
    number: int,
    digest: str,
    data_key_id: int,
    blob: bytes,
) -> str:
    """Decrypt a version's content (and remember it)."""
    chunks = keys.open_sealed(
        session=session,
        keyring=keyring,
        data_key_id=data_key_id,
        aad=aad(org_id, config_id, number),
        blob=blob,
    )
    text = b"".join(chunks).decode()
    CACHE.put(version_id, CachedVersion(number=number, checksum=digest, content=text))
    return text
