"""Notification destinations and the delivery outbox (written in the transaction of the event)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Boolean, CheckConstraint, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from xcloudflow.db.base import Base, BigId, Blob, Json, UTCDateTime, utcnow

FORMATS = ("generic", "slack", "feishu")
EVENTS = (
    "run.created",
    "run.needs_confirmation",
    "run.applied",
    "run.errored",
    "run.drift_detected",
    "compose.approval_requested",
    "compose.applied",
    "compose.failed",
    "compose.drift_detected",
    "compose.rolled_back",
)
DELIVERY_STATUSES = ("pending", "sent", "failed")


class NotificationDestination(Base):
    __tablename__ = "notification_destinations"
    __table_args__ = (
        UniqueConstraint("org_id", "name"),
        CheckConstraint("format IN ('generic', 'slack', 'feishu')", name="format"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    org_id: Mapped[int] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"))
    # None: every workspace of the organization.
    workspace_id: Mapped[int | None] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(128))
    url: Mapped[str] = mapped_column(Text)
    format: Mapped[str] = mapped_column(String(16), default="generic")
    events: Mapped[list[str]] = mapped_column(Json)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    data_key_id: Mapped[int | None] = mapped_column(ForeignKey("org_data_keys.id"))
    sealed_secret: Mapped[bytes | None] = mapped_column(Blob)  # HMAC-SHA256 key
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    created_by: Mapped[str | None] = mapped_column(String(128))


class NotificationDelivery(Base):
    __tablename__ = "notification_deliveries"
    __table_args__ = (
        CheckConstraint("status IN ('pending', 'sent', 'failed')", name="status"),
        Index("ix_notification_deliveries_due", "status", "next_attempt_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    destination_id: Mapped[int] = mapped_column(
        ForeignKey("notification_destinations.id", ondelete="CASCADE"), index=True
    )
    event: Mapped[str] = mapped_column(String(64))
    payload: Mapped[dict[str, Any]] = mapped_column(Json)
    status: Mapped[str] = mapped_column(String(16), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_error: Mapped[str | None] = mapped_column(Text)
    response_status: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
