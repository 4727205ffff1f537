"""State I/O models: stacks, versions, locks (Terraform's LockInfo), diffs, outputs."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class LockInfo(BaseModel):
    """Terraform's statemgr.LockInfo, field names as Terraform sends them."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    ID: str = Field(min_length=1, max_length=256)
    Operation: str = ""
    Info: str = ""
    Who: str = ""
    Version: str = ""
    Created: str = ""
    Path: str = ""


class LockOut(LockInfo):
    actor: str | None = None
    locked_at: datetime
    age_seconds: float


class StackLockOut(LockOut):
    """A held lock and its stack, for the organization's lock listing."""

    tool: str
    project: str
    stack: str


class StackOut(BaseModel):
    tool: str
    project: str
    stack: str
    head_version: int
    serial: int | None
    lineage: str | None
    size: int | None
    etag: str | None
    created_at: datetime
    updated_at: datetime
    deleted_at: datetime | None = None
    lock: LockOut | None = None


class StackPage(BaseModel):
    items: list[StackOut]
    next_cursor: str | None


class StateVersionOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    version: int
    serial: int | None
    lineage: str | None
    etag: str
    size: int
    actor: str | None
    source: str
    created_at: datetime
    purged_at: datetime | None = None
    purged_by: str | None = None


class VersionPage(BaseModel):
    items: list[StateVersionOut]
    next_cursor: str | None


class StateDiff(BaseModel):
    from_version: int
    to_version: int
    added: list[str]
    removed: list[str]
    changed: list[str]


class RollbackRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    version: int = Field(ge=1)
    lock_id: str | None = Field(default=None, description="the lock ID when the caller holds the lock")


class OutputValue(BaseModel):
    value: Any
    type: Any = None
    sensitive: bool = False


class OutputsOut(BaseModel):
    version: int
    outputs: dict[str, OutputValue]
