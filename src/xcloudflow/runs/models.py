"""Tables of runs: the run, its stage history and the drift findings of refresh-only checks."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    Uuid,
)
from sqlalchemy.orm import Mapped, mapped_column

from xcloudflow.db.base import Base, BigId, Json, UTCDateTime, utcnow

RUN_KINDS = ("plan", "plan_and_apply", "destroy", "refresh_only")
RUN_STAGES = (
    "pending",
    "planning",
    "planned",
    "planned_and_finished",
    "confirmed",
    "applying",
    "applied",
    "errored",
    "canceled",
    "discarded",
)
FINAL_STAGES = ("planned_and_finished", "applied", "errored", "canceled", "discarded")


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


class Run(Base):
    __tablename__ = "runs"
    __table_args__ = (
        UniqueConstraint("workspace_id", "number"),
        CheckConstraint(_in("kind", RUN_KINDS), name="kind"),
        CheckConstraint(_in("stage", RUN_STAGES), name="stage"),
        Index("ix_runs_workspace_created", "workspace_id", "created_at"),
        Index("ix_runs_org_created", "org_id", "created_at"),
        Index("ix_runs_stage", "stage"),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    org_id: Mapped[int] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"))
    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"))
    number: Mapped[int] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(32))
    source: Mapped[str] = mapped_column(String(16), default="api")  # api, drift
    stage: Mapped[str] = mapped_column(String(32), default="pending")
    message: Mapped[str | None] = mapped_column(Text)
    targets: Mapped[list[str]] = mapped_column(Json, default=list)
    auto_apply: Mapped[bool] = mapped_column(Boolean, default=False)
    code_version_id: Mapped[int | None] = mapped_column(ForeignKey("workspace_code_versions.id"))
    # {address: version} of the managed resources the run was planned from (resource-level workspaces).
    resource_versions: Mapped[dict[str, int] | None] = mapped_column(Json)
    plan_job_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    apply_job_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    has_changes: Mapped[bool | None] = mapped_column(Boolean)
    # {add, change, destroy, import, drift}
    summary: Mapped[dict[str, int] | None] = mapped_column(Json)
    output_changes: Mapped[list[dict[str, Any]] | None] = mapped_column(Json)
    # The state the plan was made against (from the plan file); an apply needs the head to still be it.
    plan_state_serial: Mapped[int | None] = mapped_column(Integer)
    plan_state_lineage: Mapped[str | None] = mapped_column(String(64))
    outputs: Mapped[dict[str, Any] | None] = mapped_column(Json)  # sensitive ones masked
    error: Mapped[str | None] = mapped_column(Text)
    error_class: Mapped[str | None] = mapped_column(String(16))  # transient, permanent
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    created_by: Mapped[str | None] = mapped_column(String(128))
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    planned_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    confirmed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    confirmed_by: Mapped[str | None] = mapped_column(String(128))
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    cancel_requested_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    cancel_requested_by: Mapped[str | None] = mapped_column(String(128))


class RunTransition(Base):
    """Every stage change of a run, in order: who, when, why (stage durations come from here)."""

    __tablename__ = "run_transitions"

    run_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True)
    seq: Mapped[int] = mapped_column(Integer, primary_key=True)
    from_stage: Mapped[str | None] = mapped_column(String(32))
    to_stage: Mapped[str] = mapped_column(String(32))
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    actor: Mapped[str | None] = mapped_column(String(128))
    reason: Mapped[str | None] = mapped_column(Text)


class DriftFinding(Base):
    __tablename__ = "drift_findings"
    __table_args__ = (Index("ix_drift_findings_workspace_detected", "workspace_id", "detected_at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    org_id: Mapped[int] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"))
    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"))
    run_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"))
    detected_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # [{address, actions, changed: [attribute names]}] from the plan's resource_drift.
    resources: Mapped[list[dict[str, Any]]] = mapped_column(Json)
    count: Mapped[int] = mapped_column(Integer)
