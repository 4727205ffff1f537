"""Audit I/O models and the context every audited service call receives."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict


@dataclass(frozen=True)
class AuditContext:
    """Who is acting and from where; built by the API layer, passed to services."""

    actor: str | None
    org_id: int | None
    request_id: str | None = None
    client_ip: str | None = None


class AuditLogOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    at: datetime
    org_id: int | None
    actor: str | None
    action: str
    resource: str | None
    request_id: str | None
    client_ip: str | None
    result: str
    details: dict[str, Any] | None


class AuditLogPage(BaseModel):
    items: list[AuditLogOut]
    next_cursor: str | None
