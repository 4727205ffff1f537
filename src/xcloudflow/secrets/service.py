"""Secret store use cases: set (merge keys), delete (a key or the whole secret), list, and reading the
values for another domain's service.

Values are sealed under the organization's data key with an AAD that names the organization and the
secret, so a blob copied to another row does not open. This module must never put a value in a
return value of the API functions, an exception message, a log line or an audit row: audit details
carry key names only. `read_values` is the one door to the values and exists for server-side
consumers (GitOps rendering). Callers own the transaction; nothing here commits.
"""

from __future__ import annotations

import json
import re

from sqlalchemy import select
from sqlalchemy.orm import Session

from xcloudflow.audit import service as audit
from xcloudflow.audit.schemas import AuditContext
from xcloudflow.db.base import utcnow
from xcloudflow.errors import Invalid, NotFound
from xcloudflow.iam import service as iam
from xcloudflow.iam.schemas import Principal
from xcloudflow.keys import service as keys
from xcloudflow.keys.keyring import Keyring
from xcloudflow.secrets.models import Secret
from xcloudflow.secrets.schemas import KEY_PATTERN, MAX_KEYS, MAX_VALUE_BYTES, NAME_PATTERN, SecretOut

_NAME = re.compile(NAME_PATTERN)
_KEY = re.compile(KEY_PATTERN)


def _aad(org_id: int, name: str) -> bytes:
    return f"xcf:secret:{org_id}:{name}".encode()


def _out(row: Secret) -> SecretOut:
    return SecretOut(
        name=row.name,
        keys=sorted(row.keys),
        created_at=row.created_at,
        created_by=row.created_by,
        updated_at=row.updated_at,
        updated_by=row.updated_by,
    )


def check_name(name: str) -> str:
    if not _NAME.match(name):
        raise Invalid(
            f"secret name {name!r} is not valid: letters, digits and . _ @ -, at most 128, starting with a "
            "letter or digit",
            details={"field": "name"},
        )
    return name


def _check_data(data: dict[str, str]) -> None:
    for key, value in data.items():
        if not _KEY.match(key):
            raise Invalid(
                f"secret key {key!r} is not valid: letters, digits, '.', '_' and '-' (at most 253)",
                details={"field": "data", "key": key},
            )
        if len(value.encode()) > MAX_VALUE_BYTES:
            # The message names the key, never the value.
            raise Invalid(
                f"the value of secret key {key!r} is larger than {MAX_VALUE_BYTES} bytes",
                details={"field": "data", "key": key},
            )


def _row(session: Session, org_id: int, name: str, *, lock: bool = False) -> Secret | None:
    stmt = select(Secret).where(Secret.org_id == org_id, Secret.name == name)
    return session.scalars(stmt.with_for_update() if lock else stmt).first()


def _open(session: Session, keyring: Keyring, row: Secret) -> dict[str, str]:
    blob = b"".join(
        keys.open_sealed(
            session=session,
            keyring=keyring,
            data_key_id=row.data_key_id,
            aad=_aad(row.org_id, row.name),
            blob=row.sealed,
        )
    )
    values = json.loads(blob)
    assert isinstance(values, dict)
    return {str(k): str(v) for k, v in values.items()}


def _seal(session: Session, keyring: Keyring, row: Secret, values: dict[str, str]) -> None:
    data = json.dumps(values, sort_keys=True).encode()
    row.data_key_id, row.sealed = keys.seal(
        session=session, keyring=keyring, org_id=row.org_id, aad=_aad(row.org_id, row.name), chunks=[data]
    )
    row.keys = sorted(values)


def put_secret(
    *,
    session: Session,
    keyring: Keyring,
    principal: Principal,
    ctx: AuditContext,
    name: str,
    data: dict[str, str],
) -> tuple[SecretOut, bool]:
    """Set the given keys of secret `name` (created if missing); returns (secret, created)."""
    iam.require(principal, "writer", action="setting secrets")
    check_name(name)
    if not data:
        raise Invalid("give at least one KEY=VALUE", details={"field": "data"})
    _check_data(data)
    row = _row(session, principal.org_id, name, lock=True)
    created = row is None
    now = utcnow()
    if row is None:
        row = Secret(
            org_id=principal.org_id,
            name=name,
            created_at=now,
            created_by=principal.user_name,
        )
        values: dict[str, str] = {}
    else:
        values = _open(session, keyring, row)
    if len(set(values) | set(data)) > MAX_KEYS:
        raise Invalid(f"secret {name} would hold more than {MAX_KEYS} keys", details={"field": "data"})
    changed = sorted(k for k, v in data.items() if values.get(k) != v)
    values.update(data)
    _seal(session, keyring, row, values)
    row.updated_at, row.updated_by = now, principal.user_name
    if created:
        session.add(row)
    session.flush()
    audit.record(
        session=session,
        ctx=ctx,
        action="secret.create" if created else "secret.update",
        resource=f"secret/{name}",
        details={"keys_set": sorted(data), "keys_changed": changed},
    )
    return _out(row), created


def delete_secret(
    *,
    session: Session,
    keyring: Keyring,
    principal: Principal,
    ctx: AuditContext,
    name: str,
    key: str | None = None,
) -> None:
    """Delete one key of a secret (`key`), or the whole secret."""
    iam.require(principal, "writer", action="deleting secrets")
    row = _row(session, principal.org_id, name, lock=True)
    if row is None:
        raise NotFound(f"no secret {name}")
    if key is None:
        session.delete(row)
        session.flush()
        audit.record(session=session, ctx=ctx, action="secret.delete", resource=f"secret/{name}")
        return
    values = _open(session, keyring, row)
    if key not in values:
        raise NotFound(f"secret {name} has no key {key!r} (keys: {', '.join(sorted(values)) or 'none'})")
    del values[key]
    _seal(session, keyring, row, values)
    row.updated_at, row.updated_by = utcnow(), principal.user_name
    session.flush()
    audit.record(
        session=session,
        ctx=ctx,
        action="secret.delete_key",
        resource=f"secret/{name}",
        details={"key": key},
    )


def list_secrets(*, session: Session, principal: Principal) -> list[SecretOut]:
    rows = session.scalars(select(Secret).where(Secret.org_id == principal.org_id).order_by(Secret.name))
    return [_out(r) for r in rows]


def show_secret(*, session: Session, principal: Principal, name: str) -> SecretOut:
    row = _row(session, principal.org_id, name)
    if row is None:
        raise NotFound(f"no secret {name}")
    return _out(row)


def read_values(*, session: Session, keyring: Keyring, org_id: int, name: str) -> dict[str, str] | None:
    """The values of secret `name` for a server-side consumer, or None when there is no such secret.

    Never hand the result to an API response, a log line, an event or an audit row."""
    row = _row(session, org_id, name)
    if row is None:
        return None
    return _open(session, keyring, row)
