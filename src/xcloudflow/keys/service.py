"""Per-organization data keys and the seal/open operations other domains use.

Each organization has versioned data keys (random 256-bit), stored wrapped by the master key. New
content is sealed with the newest version; old content keeps naming the version it was sealed with.
`rotate_master` re-wraps every data key with the current master key; `rotate_data_key` starts a new
version for new writes. Callers own the transaction.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from xcloudflow.db.dialect import insert_ignore
from xcloudflow.errors import Invalid
from xcloudflow.keys import crypto
from xcloudflow.keys.keyring import KEY_BYTES, Keyring
from xcloudflow.keys.models import OrgDataKey


def _context(org_id: int, version: int) -> bytes:
    return f"xcf:data-key:{org_id}:{version}".encode()


def _unwrap(keyring: Keyring, row: OrgDataKey) -> bytes:
    cached = keyring.cached(row.id)
    if cached is not None:
        return cached
    master = keyring.by_id.get(row.master_key_id)
    if master is None:
        raise Invalid(
            f"data key {row.org_id}/v{row.version} is wrapped by master key {row.master_key_id}, "
            "which this server does not have (set XCF_ENCRYPTION_OLD_KEYS or restore the key file)"
        )
    key = crypto.unwrap_key(master, row.wrapped_key, context=_context(row.org_id, row.version))
    keyring.remember(row.id, key)
    return key


def current_data_key(*, session: Session, keyring: Keyring, org_id: int) -> tuple[int, bytes]:
    """The newest data key of an organization, created on first use."""
    row = session.scalars(
        select(OrgDataKey).where(OrgDataKey.org_id == org_id).order_by(OrgDataKey.version.desc()).limit(1)
    ).first()
    if row is None:
        key = os.urandom(KEY_BYTES)
        insert_ignore(
            session,
            OrgDataKey.__table__,  # type: ignore[arg-type]
            {
                "org_id": org_id,
                "version": 1,
                "wrapped_key": crypto.wrap_key(keyring.current, key, context=_context(org_id, 1)),
                "master_key_id": keyring.current_id,
            },
            conflict=["org_id", "version"],
        )
        row = session.scalars(
            select(OrgDataKey).where(OrgDataKey.org_id == org_id, OrgDataKey.version == 1)
        ).one()
    return row.id, _unwrap(keyring, row)


def data_key(*, session: Session, keyring: Keyring, data_key_id: int) -> bytes:
    cached = keyring.cached(data_key_id)
    if cached is not None:
        return cached
    return _unwrap(keyring, session.get_one(OrgDataKey, data_key_id))


def seal(
    *, session: Session, keyring: Keyring, org_id: int, aad: bytes, chunks: Iterable[bytes]
) -> tuple[int, bytes]:
    key_id, key = current_data_key(session=session, keyring=keyring, org_id=org_id)
    return key_id, crypto.seal(chunks, key=key, aad=aad)


def open_sealed(
    *, session: Session, keyring: Keyring, data_key_id: int, aad: bytes, blob: bytes
) -> Iterator[bytes]:
    key = data_key(session=session, keyring=keyring, data_key_id=data_key_id)
    return crypto.open_sealed(blob, key=key, aad=aad)


def rotate_master(*, session: Session, keyring: Keyring) -> int:
    """Re-wrap every data key not yet under the current master key; returns how many changed."""
    changed = 0
    for row in session.scalars(select(OrgDataKey).where(OrgDataKey.master_key_id != keyring.current_id)):
        key = _unwrap(keyring, row)
        row.wrapped_key = crypto.wrap_key(keyring.current, key, context=_context(row.org_id, row.version))
        row.master_key_id = keyring.current_id
        changed += 1
    session.flush()
    return changed


def rotate_data_key(*, session: Session, keyring: Keyring, org_id: int) -> int:
    """Start a new data key version for an organization's new writes; returns the version."""
    newest = session.scalar(select(func.max(OrgDataKey.version)).where(OrgDataKey.org_id == org_id)) or 0
    version = newest + 1
    session.add(
        OrgDataKey(
            org_id=org_id,
            version=version,
            wrapped_key=crypto.wrap_key(
                keyring.current, os.urandom(KEY_BYTES), context=_context(org_id, version)
            ),
            master_key_id=keyring.current_id,
        )
    )
    session.flush()
    return version


def master_key_usage(*, session: Session) -> dict[str, int]:
    rows = session.execute(
        select(OrgDataKey.master_key_id, func.count()).group_by(OrgDataKey.master_key_id)
    ).all()
    return {mk: int(n) for mk, n in rows}


def derive_org_secret(*, session: Session, keyring: Keyring, org_id: int, purpose: str) -> bytes:
    """A stable per-organization secret for `purpose` (HKDF of the org's first data key)."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.kdf.hkdf import HKDF

    current_data_key(session=session, keyring=keyring, org_id=org_id)  # makes sure version 1 exists
    first = session.scalars(
        select(OrgDataKey).where(OrgDataKey.org_id == org_id, OrgDataKey.version == 1)
    ).one()
    key = _unwrap(keyring, first)
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=f"xcf:{purpose}".encode()).derive(key)
