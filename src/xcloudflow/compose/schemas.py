"""ChangeSet I/O models of the control plane API."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class ChangeSetCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    repo: str = Field(
        min_length=1,
        max_length=2048,
        description="a git URL (https://, ssh://, git@host:path, file://) or an absolute path on the server; "
        "local paths need XCF_COMPOSE_LOCAL_ROOTS",
    )
    ref: str | None = Field(default=None, max_length=256, description="branch, tag or commit (default HEAD)")
    environment: str = Field(pattern=r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
    apply: bool = Field(default=False, description="apply as soon as planning ends and policy passes")


class Reason(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str = Field(min_length=1, max_length=4000)


class Approval(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str | None = Field(default=None, max_length=4000)
    nodes: list[str] | None = Field(
        default=None,
        max_length=1000,
        description="node keys to approve (default: every node awaiting approval)",
    )


class CheckRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    environment: str = Field(min_length=1, max_length=128)
    keys: list[str] | None = Field(default=None, max_length=1000, description="node keys (default: all)")


class NodeOut(BaseModel):
    key: str
    composition: str
    module: str
    ref: str
    engine: str
    layer: str
    action: str
    depends_on: list[str]
    route: dict[str, Any]
    inputs: dict[str, Any]
    status: str
    waiting_for: str | None
    plan: dict[str, Any] | None
    policy: list[dict[str, Any]] | None
    approval: dict[str, Any] | None
    snapshot: dict[str, Any] | None
    workspace: str | None
    run: uuid.UUID | None
    job: uuid.UUID | None
    attempts: int
    error: str | None
    started_at: datetime | None
    applied_at: datetime | None
    finished_at: datetime | None


class ChangeSetOut(BaseModel):
    id: uuid.UUID
    environment: str
    kind: str
    status: str
    repo: str
    ref: str | None
    commit: str | None
    apply_requested: bool
    rollback_of: uuid.UUID | None
    summary: dict[str, int] | None
    policy: dict[str, Any]
    error: str | None
    created_at: datetime
    created_by: str | None
    apply_started_at: datetime | None
    finished_at: datetime | None
    nodes: list[NodeOut]


class ChangeSetSummary(BaseModel):
    id: uuid.UUID
    environment: str
    kind: str
    status: str
    commit: str | None
    summary: dict[str, int] | None
    created_at: datetime
    created_by: str | None
    finished_at: datetime | None


class ChangeSetPage(BaseModel):
    items: list[ChangeSetSummary]
    next_cursor: str | None


class TargetOut(BaseModel):
    environment: str
    key: str
    composition: str
    engine: str
    layer: str
    route: dict[str, Any]
    workspace: str | None
    code_version: int | None
    changeset: uuid.UUID
    commit: str | None
    status: str
    applied_at: datetime
    next_check_at: datetime | None
    expires_at: datetime | None
    last_checked_at: datetime | None
    drifted_at: datetime | None
    drift_summary: dict[str, Any] | None
