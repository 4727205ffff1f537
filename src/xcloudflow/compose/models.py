"""Tables of the control plane: ChangeSets, their nodes, and the reconcile targets they leave behind.

A ChangeSet is one plan of one environment at one commit; its nodes are the (composition, module)
pairs of the environment's DAG, each executed by its engine (Terraform through a workspace run, the
other engines through agent jobs). A target is what an applied node leaves to look after: the drift
schedule of its route and, for Ephemeral compositions, the time its resources are collected.
"""

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

from xcloudflow.db.base import Base, BigId, Blob, Json, UTCDateTime, utcnow

CHANGESET_KINDS = ("apply", "rollback", "reconcile", "gc")
CHANGESET_STATUSES = (
    "planning",
    "planned",
    "blocked",
    "applying",
    "applied",
    "failed",
    "rejected",
    "discarded",
    "rolled_back",
)
CHANGESET_FINAL = ("applied", "failed", "rejected", "discarded", "rolled_back")
NODE_STATUSES = (
    "pending",
    "planning",
    "planned",
    "no_changes",
    "awaiting_approval",
    "waiting",
    "backing_up",
    "applying",
    "observing",
    "applied",
    "failed",
    "skipped",
    "rejected",
    "discarded",
)
NODE_ACTIVE = ("backing_up", "applying", "observing")
NODE_FINAL = ("applied", "failed", "skipped", "rejected", "discarded")
TARGET_STATUSES = ("active", "gone")


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


class ComposeChangeSet(Base):
    __tablename__ = "compose_changesets"
    __table_args__ = (
        CheckConstraint(_in("kind", CHANGESET_KINDS), name="kind"),
        CheckConstraint(_in("status", CHANGESET_STATUSES), name="status"),
        Index("ix_compose_changesets_org_created", "org_id", "created_at"),
        Index("ix_compose_changesets_status", "status"),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    org_id: Mapped[int] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"))
    environment: Mapped[str] = mapped_column(String(128))
    kind: Mapped[str] = mapped_column(String(16), default="apply")
    status: Mapped[str] = mapped_column(String(16), default="planning")
    repo: Mapped[str] = mapped_column(String(2048))  # as given, credentials masked
    ref: Mapped[str | None] = mapped_column(String(256))
    commit: Mapped[str | None] = mapped_column(String(64))
    # Apply as soon as planning ends (and policy passes): `xcf compose apply --repo ... --env ...`.
    apply_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    # What the planner decided that the orchestrator needs later: config bits, compositions, env.
    context: Mapped[dict[str, Any]] = mapped_column(Json, default=dict)
    summary: Mapped[dict[str, int] | None] = mapped_column(Json)
    policy_blocking: Mapped[bool] = mapped_column(Boolean, default=False)
    override_by: Mapped[str | None] = mapped_column(String(128))
    override_reason: Mapped[str | None] = mapped_column(Text)
    override_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    rollback_of: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    # The repository at `commit` (tar.gz, no .git): what agents run and Terraform code is cut from.
    bundle: Mapped[bytes | None] = mapped_column(Blob, deferred=True)
    bundle_sha256: Mapped[str | None] = mapped_column(String(64))
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    created_by: Mapped[str | None] = mapped_column(String(128))
    apply_started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class ComposeNode(Base):
    __tablename__ = "compose_nodes"
    __table_args__ = (
        UniqueConstraint("changeset_id", "key"),
        CheckConstraint(_in("status", NODE_STATUSES), name="status"),
        Index("ix_compose_nodes_env_status", "org_id", "environment", "status"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    changeset_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("compose_changesets.id", ondelete="CASCADE"))
    org_id: Mapped[int] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"))
    environment: Mapped[str] = mapped_column(String(128))
    seq: Mapped[int] = mapped_column(Integer)  # position in the topological order
    key: Mapped[str] = mapped_column(String(256))
    composition: Mapped[str] = mapped_column(String(512))
    module: Mapped[str] = mapped_column(String(128))
    ref: Mapped[str] = mapped_column(String(512))
    engine: Mapped[str] = mapped_column(String(16))
    layer: Mapped[str] = mapped_column(String(16))
    depends_on: Mapped[list[str]] = mapped_column(Json, default=list)
    route: Mapped[dict[str, Any]] = mapped_column(Json, default=dict)
    inputs: Mapped[dict[str, Any]] = mapped_column(Json, default=dict)
    # What to do: plan+apply the commit, or (rollback/gc) destroy or restore a code version.
    action: Mapped[str] = mapped_column(String(16), default="apply")
    status: Mapped[str] = mapped_column(String(20), default="pending")
    waiting_for: Mapped[str | None] = mapped_column(Text)
    plan: Mapped[dict[str, Any] | None] = mapped_column(Json)
    policy: Mapped[list[dict[str, Any]] | None] = mapped_column(Json)
    approval_required: Mapped[bool] = mapped_column(Boolean, default=False)
    change_window: Mapped[str | None] = mapped_column(String(64))
    decision: Mapped[str | None] = mapped_column(String(16))  # approved, rejected
    decided_by: Mapped[str | None] = mapped_column(String(128))
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    decision_reason: Mapped[str | None] = mapped_column(Text)
    workspace: Mapped[str | None] = mapped_column(String(300))  # "project/name"
    run_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    job_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    # {"state_version": n, "code_version": n, "changeset": previous applied changeset, "backup_job": id}
    snapshot: Mapped[dict[str, Any] | None] = mapped_column(Json)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    error: Mapped[str | None] = mapped_column(Text)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    applied_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class ComposeTarget(Base):
    """An applied node of an environment, looked after by its route's reconcile and drift policy."""

    __tablename__ = "compose_targets"
    __table_args__ = (
        UniqueConstraint("org_id", "environment", "key"),
        CheckConstraint(_in("status", TARGET_STATUSES), name="status"),
        Index("ix_compose_targets_next_check", "next_check_at"),
        Index("ix_compose_targets_expires", "expires_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    org_id: Mapped[int] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"))
    environment: Mapped[str] = mapped_column(String(128))
    key: Mapped[str] = mapped_column(String(256))
    composition: Mapped[str] = mapped_column(String(512))
    engine: Mapped[str] = mapped_column(String(16))
    layer: Mapped[str] = mapped_column(String(16))
    route: Mapped[dict[str, Any]] = mapped_column(Json, default=dict)
    inputs: Mapped[dict[str, Any]] = mapped_column(Json, default=dict)
    ref: Mapped[str] = mapped_column(String(512))
    workspace: Mapped[str | None] = mapped_column(String(300))
    code_version: Mapped[int | None] = mapped_column(Integer)
    changeset_id: Mapped[uuid.UUID] = mapped_column(Uuid)  # the changeset that last applied it
    commit: Mapped[str | None] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16), default="active")
    applied_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    next_check_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    check_run_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    check_job_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    last_checked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    drifted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    drift_summary: Mapped[dict[str, Any] | None] = mapped_column(Json)
