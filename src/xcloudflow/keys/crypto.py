"""Authenticated, compressed, segmented encryption of large documents (states).

A sealed blob is `XCS1 | nonce prefix (7 bytes) | segments`, each segment `length (4 bytes) |
AES-256-GCM ciphertext` of at most SEGMENT bytes of zstd-compressed data. The nonce of segment i is
the prefix, the counter i and a last-segment flag (the STREAM construction), so segments cannot be
reordered, dropped or truncated without detection, and decryption streams segment by segment: a
50 MB state is never held decrypted in memory at once. Pure functions; no database, no settings.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Iterable, Iterator

import zstandard
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

MAGIC = b"XCS1"
SEGMENT = 1024 * 1024
_PREFIX = 7
_LEN = struct.Struct(">I")


class DecryptionError(Exception):
    """The blob is corrupt, truncated, or was sealed with another key or context."""


def _nonce(prefix: bytes, counter: int, last: bool) -> bytes:
    return prefix + counter.to_bytes(4, "big") + (b"\x01" if last else b"\x00")


def wrap_key(master: bytes, data_key: bytes, *, context: bytes) -> bytes:
    nonce = os.urandom(12)
    return nonce + AESGCM(master).encrypt(nonce, data_key, context)


def unwrap_key(master: bytes, wrapped: bytes, *, context: bytes) -> bytes:
    try:
        return AESGCM(master).decrypt(wrapped[:12], wrapped[12:], context)
    except InvalidTag as exc:
        raise DecryptionError("data key does not unwrap with this master key") from exc


def seal(chunks: Iterable[bytes], *, key: bytes, aad: bytes, level: int = 3) -> bytes:
    """Compress and encrypt a stream of plaintext chunks; returns the sealed blob."""
    aead = AESGCM(key)
    prefix = os.urandom(_PREFIX)
    out = bytearray(MAGIC + prefix)
    compressor = zstandard.ZstdCompressor(level=level).compressobj()
    pending = bytearray()
    counter = 0

    def emit(segment: bytes, last: bool) -> None:
        nonlocal counter
        ct = aead.encrypt(_nonce(prefix, counter, last), segment, aad)
        out.extend(_LEN.pack(len(ct)))
        out.extend(ct)
        counter += 1

    for chunk in chunks:
        pending.extend(compressor.compress(chunk))
        # Keep at least one byte back so the final segment is never empty-and-unflagged.
        while len(pending) > SEGMENT:
            emit(bytes(pending[:SEGMENT]), False)
            del pending[:SEGMENT]
    pending.extend(compressor.flush())
    while len(pending) > SEGMENT:
        emit(bytes(pending[:SEGMENT]), False)
        del pending[:SEGMENT]
    emit(bytes(pending), True)
    return bytes(out)


def open_sealed(blob: bytes, *, key: bytes, aad: bytes, chunk_size: int = 256 * 1024) -> Iterator[bytes]:
    """Decrypt and decompress a sealed blob, yielding plaintext in chunks."""
    if blob[:4] != MAGIC:
        raise DecryptionError("not a sealed XCloudFlow blob")
    aead = AESGCM(key)
    prefix = blob[4 : 4 + _PREFIX]
    pos = 4 + _PREFIX
    decompressor = zstandard.ZstdDecompressor().decompressobj()
    counter = 0
    view = memoryview(blob)
    while True:
        if pos + 4 > len(blob):
            raise DecryptionError("sealed blob is truncated")
        (length,) = _LEN.unpack_from(blob, pos)
        pos += 4
        end = pos + length
        if end > len(blob):
            raise DecryptionError("sealed blob is truncated")
        last = end == len(blob)
        try:
            segment = aead.decrypt(_nonce(prefix, counter, last), view[pos:end], aad)
        except InvalidTag as exc:
            raise DecryptionError("sealed blob failed authentication") from exc
        counter += 1
        pos = end
        data = decompressor.decompress(segment)
        for i in range(0, len(data), chunk_size):
            yield data[i : i + chunk_size]
        if last:
            return
