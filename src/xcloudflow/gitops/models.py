"""GitOps tables: sources (the ConfluxSource spec plus its status) and their event stream."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import CheckConstraint, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from xcloudflow.db.base import Base, BigId, Blob, Json, UTCDateTime, utcnow

REF_KINDS = ("branch", "tag", "commit")
CONDITION_STATUSES = ("True", "False", "Unknown")
EVENT_TYPES = ("Normal", "Warning")


class GitopsSource(Base):
    __tablename__ = "gitops_sources"
    __table_args__ = (
        UniqueConstraint("org_id", "name"),
        CheckConstraint("ref_kind IN ('branch', 'tag', 'commit')", name="ref_kind"),
        CheckConstraint("ready_status IN ('True', 'False', 'Unknown')", name="ready_status"),
        Index("ix_gitops_sources_due", "next_sync_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    org_id: Mapped[int] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(128))
    # spec
    url: Mapped[str] = mapped_column(Text)
    ref_kind: Mapped[str] = mapped_column(String(8))
    ref_name: Mapped[str] = mapped_column(String(256))
    interval: Mapped[str] = mapped_column(String(32))  # as written: "1m"
    interval_seconds: Mapped[int] = mapped_column(Integer)
    path: Mapped[str] = mapped_column(String(1024), default="")
    secret_ref: Mapped[str | None] = mapped_column(String(128))  # repository credentials
    suspended: Mapped[bool] = mapped_column(default=False)
    data_key_id: Mapped[int] = mapped_column(ForeignKey("org_data_keys.id"))
    sealed_webhook_secret: Mapped[bytes] = mapped_column(Blob)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    created_by: Mapped[str | None] = mapped_column(String(128))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # status
    next_sync_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_fetched_commit: Mapped[str | None] = mapped_column(String(40))
    last_fetched_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_synced_commit: Mapped[str | None] = mapped_column(String(40))
    last_synced_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    ready_status: Mapped[str] = mapped_column(String(8), default="Unknown")
    ready_reason: Mapped[str] = mapped_column(String(64), default="Created")
    ready_message: Mapped[str] = mapped_column(Text, default="")
    ready_changed_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # The last sync's results, the configs the source manages, its orphans and spec.prune:
    # `service.SyncRecord` (older rows: a list of the per-document results).
    documents: Mapped[list[dict[str, Any]] | dict[str, Any]] = mapped_column(Json, default=list)


class GitopsEvent(Base):
    """What a person reads to debug a source, like Kubernetes events: a repeat of the newest event
    (same type, reason and message) bumps `count` and `last_at` instead of adding a row."""

    __tablename__ = "gitops_events"
    __table_args__ = (CheckConstraint("type IN ('Normal', 'Warning')", name="type"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    source_id: Mapped[int] = mapped_column(ForeignKey("gitops_sources.id", ondelete="CASCADE"), index=True)
    type: Mapped[str] = mapped_column(String(8))
    reason: Mapped[str] = mapped_column(String(64))
    message: Mapped[str] = mapped_column(Text)
    commit: Mapped[str | None] = mapped_column(String(40))
    count: Mapped[int] = mapped_column(Integer, default=1)
    first_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
