"""Writing and reading the audit log.

`record` adds the row to the caller's transaction, so an audit row exists exactly when the change it
describes was committed. Denied or failed attempts are recorded by the server in a transaction of
their own (the failed one is rolled back).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from xcloudflow.audit.models import AuditLog
from xcloudflow.audit.schemas import AuditContext, AuditLogOut, AuditLogPage
from xcloudflow.db.pagination import check_limit, decode_cursor, page_of


def record(
    *,
    session: Session,
    ctx: AuditContext,
    action: str,
    resource: str | None,
    result: str = "success",
    details: dict[str, Any] | None = None,
) -> None:
    session.add(
        AuditLog(
            org_id=ctx.org_id,
            actor=ctx.actor,
            action=action,
            resource=resource,
            request_id=ctx.request_id,
            client_ip=ctx.client_ip,
            result=result,
            details=details,
        )
    )
    session.flush()


def list_logs(
    *,
    session: Session,
    org_id: int,
    action: str | None = None,
    actor: str | None = None,
    resource: str | None = None,
    result: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    cursor: str | None = None,
    limit: int = 100,
) -> AuditLogPage:
    check_limit(limit)
    # A time without a zone means UTC, as everywhere in the API.
    since = since.replace(tzinfo=UTC) if since and since.tzinfo is None else since
    until = until.replace(tzinfo=UTC) if until and until.tzinfo is None else until
    stmt = select(AuditLog).where(AuditLog.org_id == org_id)
    if action:
        stmt = (
            stmt.where(AuditLog.action.startswith(action))
            if action.endswith(".")
            else stmt.where(AuditLog.action == action)
        )
    if actor:
        stmt = stmt.where(AuditLog.actor == actor)
    if resource:
        stmt = stmt.where(AuditLog.resource.startswith(resource))
    if result:
        stmt = stmt.where(AuditLog.result == result)
    if since:
        stmt = stmt.where(AuditLog.at >= since)
    if until:
        stmt = stmt.where(AuditLog.at < until)
    after = decode_cursor(cursor)
    if after is not None:
        stmt = stmt.where(AuditLog.id < int(after))
    rows, next_cursor = page_of(
        list(session.scalars(stmt.order_by(AuditLog.id.desc()).limit(limit + 1))), limit, lambda r: r.id
    )
    return AuditLogPage(items=[AuditLogOut.model_validate(r) for r in rows], next_cursor=next_cursor)
