"""Sealed blobs: round trips, tamper detection, segment boundaries."""

from __future__ import annotations

import os

import pytest

from xcloudflow.keys import crypto

KEY = os.urandom(32)


@pytest.mark.parametrize("size", [0, 1, 1000, crypto.SEGMENT - 1, crypto.SEGMENT, 3 * crypto.SEGMENT + 7])
def test_round_trip(size: int) -> None:
    data = os.urandom(size // 2) + b"a" * (size - size // 2)  # half incompressible
    blob = crypto.seal([data[i : i + 65536] for i in range(0, len(data), 65536)], key=KEY, aad=b"ctx")
    assert b"".join(crypto.open_sealed(blob, key=KEY, aad=b"ctx")) == data


def test_compresses_and_hides_plaintext() -> None:
    data = b'{"password": "hunter2-secret"}' * 2000
    blob = crypto.seal([data], key=KEY, aad=b"ctx")
    assert len(blob) < len(data) / 10
    assert b"hunter2" not in blob


def test_wrong_key_context_or_tampering_fails() -> None:
    data = os.urandom(3 * crypto.SEGMENT)
    blob = crypto.seal([data], key=KEY, aad=b"ctx")
    with pytest.raises(crypto.DecryptionError):
        list(crypto.open_sealed(blob, key=os.urandom(32), aad=b"ctx"))
    with pytest.raises(crypto.DecryptionError):
        list(crypto.open_sealed(blob, key=KEY, aad=b"other"))
    flipped = bytearray(blob)
    flipped[len(blob) // 2] ^= 1
    with pytest.raises(crypto.DecryptionError):
        list(crypto.open_sealed(bytes(flipped), key=KEY, aad=b"ctx"))
    # Cutting the blob after a whole segment must not pass as a shorter document.
    first_len = int.from_bytes(blob[11:15], "big")
    with pytest.raises(crypto.DecryptionError):
        list(crypto.open_sealed(blob[: 15 + first_len], key=KEY, aad=b"ctx"))
    with pytest.raises(crypto.DecryptionError):
        list(crypto.open_sealed(b"nope", key=KEY, aad=b"ctx"))


def test_key_wrapping() -> None:
    master, data_key = os.urandom(32), os.urandom(32)
    wrapped = crypto.wrap_key(master, data_key, context=b"org:1")
    assert crypto.unwrap_key(master, wrapped, context=b"org:1") == data_key
    with pytest.raises(crypto.DecryptionError):
        crypto.unwrap_key(master, wrapped, context=b"org:2")
