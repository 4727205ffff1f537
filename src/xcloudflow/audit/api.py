"""GET /api/v1/audit-logs for admins (thin)."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, Depends, Query, Request

from xcloudflow.audit import service
from xcloudflow.audit.schemas import AuditLogPage
from xcloudflow.iam.schemas import Principal
from xcloudflow.iam.service import require
from xcloudflow.server.deps import app_context, principal

router = APIRouter(prefix="/api/v1", tags=["audit"])


@router.get("/audit-logs", response_model=AuditLogPage)
def list_audit_logs(
    request: Request,
    action: str | None = Query(None, description="exact action, or a prefix ending in '.' (e.g. 'state.')"),
    actor: str | None = None,
    resource: str | None = Query(None, description="resource prefix, e.g. stack/terraform/net"),
    result: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    cursor: str | None = None,
    limit: int = Query(100),
    who: Principal = Depends(principal),
) -> AuditLogPage:
    require(who, "admin", action="reading the audit log")
    with app_context(request).db.read() as session:
        return service.list_logs(
            session=session,
            org_id=who.org_id,
            action=action,
            actor=actor,
            resource=resource,
            result=result,
            since=since,
            until=until,
            cursor=cursor,
            limit=limit,
        )
