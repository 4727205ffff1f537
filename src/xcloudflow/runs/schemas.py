"""Run I/O models."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

RunKind = Literal["plan", "plan_and_apply", "destroy", "refresh_only"]
TARGET_PATTERN = r"^[A-Za-z0-9_.\-\[\]\"]{1,512}$"


class RunCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: RunKind = "plan_and_apply"
    message: str | None = Field(default=None, max_length=2000)
    targets: list[str] = Field(default_factory=list, max_length=100)
    auto_apply: bool | None = Field(
        default=None,
        description="apply without confirmation when the plan has changes (default: the workspace's)",
    )


class TransitionOut(BaseModel):
    from_stage: str | None = Field(serialization_alias="from")
    to_stage: str = Field(serialization_alias="to")
    at: datetime
    actor: str | None
    reason: str | None


class RunOut(BaseModel):
    id: uuid.UUID
    number: int
    workspace: str
    kind: str
    source: str
    stage: str
    message: str | None
    targets: list[str]
    auto_apply: bool
    code_version: int | None
    resource_versions: dict[str, int] | None
    has_changes: bool | None
    summary: dict[str, int] | None
    output_changes: list[dict[str, Any]] | None
    outputs: dict[str, Any] | None
    error: str | None
    error_class: str | None
    created_at: datetime
    created_by: str | None
    started_at: datetime | None
    planned_at: datetime | None
    confirmed_at: datetime | None
    confirmed_by: str | None
    finished_at: datetime | None
    cancel_requested_at: datetime | None
    queue_position: int | None
    waiting_for: str | None = Field(
        default=None, description="why a queued run has not started: the agent pool it waits for"
    )
    plan_job: uuid.UUID | None
    apply_job: uuid.UUID | None
    transitions: list[TransitionOut] = Field(default_factory=list)


class RunPage(BaseModel):
    items: list[RunOut]
    next_cursor: str | None


class RunLogLine(BaseModel):
    cursor: str
    at: datetime
    text: str
    phase: Literal["plan", "apply", "run"]


class RunLogPage(BaseModel):
    items: list[RunLogLine]
    last_cursor: str
    more: bool
    done: bool
    stage: str


class DriftFindingOut(BaseModel):
    id: int
    run: uuid.UUID
    run_number: int
    detected_at: datetime
    count: int
    resources: list[dict[str, Any]]


class RunConfirm(BaseModel):
    model_config = ConfigDict(extra="forbid")

    comment: str | None = Field(default=None, max_length=2000)
