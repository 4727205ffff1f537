"""Tables of the state domain (seed 000 section 4, tables 1-2, plus the outbox)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from xcloudflow.db.base import Base, BigId, Blob, UTCDateTime, utcnow


class StateHead(Base):
    """One stack: its current version, and its soft-delete mark."""

    __tablename__ = "state_heads"
    __table_args__ = (UniqueConstraint("org_id", "tool", "project", "stack"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    org_id: Mapped[int] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"))
    tool: Mapped[str] = mapped_column(String(16))
    project: Mapped[str] = mapped_column(String(128))
    stack: Mapped[str] = mapped_column(String(128))
    head_version: Mapped[int] = mapped_column(BigInteger, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    deleted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    deleted_by: Mapped[str | None] = mapped_column(String(128))


class StateVersion(Base):
    """An immutable state version. `content` is compressed and encrypted (see keys.crypto)."""

    __tablename__ = "states"
    __table_args__ = (
        UniqueConstraint("head_id", "version"),
        Index("ix_states_head_version", "head_id", "version"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    head_id: Mapped[int] = mapped_column(ForeignKey("state_heads.id", ondelete="CASCADE"))
    org_id: Mapped[int] = mapped_column(BigId)
    tool: Mapped[str] = mapped_column(String(16))
    project: Mapped[str] = mapped_column(String(128))
    stack: Mapped[str] = mapped_column(String(128))
    version: Mapped[int] = mapped_column(BigInteger)
    serial: Mapped[int | None] = mapped_column(BigInteger)
    lineage: Mapped[str | None] = mapped_column(String(128))
    etag: Mapped[str] = mapped_column(String(64))
    md5: Mapped[str] = mapped_column(String(32))
    size: Mapped[int] = mapped_column(BigInteger)
    actor: Mapped[str | None] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # What wrote it: "backend", "rollback", "import", "api".
    source: Mapped[str] = mapped_column(String(32), default="backend")
    data_key_id: Mapped[int | None] = mapped_column(ForeignKey("org_data_keys.id"))
    content: Mapped[bytes | None] = mapped_column(Blob, deferred=True)
    purged_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    purged_by: Mapped[str | None] = mapped_column(String(128))


class StateLock(Base):
    """A lock held on a stack: a row, so it survives restarts and works across replicas."""

    __tablename__ = "state_locks"

    org_id: Mapped[int] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"), primary_key=True)
    tool: Mapped[str] = mapped_column(String(16), primary_key=True)
    project: Mapped[str] = mapped_column(String(128), primary_key=True)
    stack: Mapped[str] = mapped_column(String(128), primary_key=True)
    lock_id: Mapped[str] = mapped_column(String(256))
    operation: Mapped[str | None] = mapped_column(String(128))
    info: Mapped[str | None] = mapped_column(Text)
    who: Mapped[str | None] = mapped_column(String(256))
    tf_version: Mapped[str | None] = mapped_column(String(64))
    lock_created: Mapped[str | None] = mapped_column(String(64))
    path: Mapped[str | None] = mapped_column(Text)
    actor: Mapped[str | None] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class StateOutbox(Base):
    """One row per state write, for consumers (inventory). NOTIFY only wakes them up."""

    __tablename__ = "state_outbox"
    __table_args__ = (Index("ix_state_outbox_pending", "processed_at", "id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    state_id: Mapped[int] = mapped_column(ForeignKey("states.id", ondelete="CASCADE"))
    head_id: Mapped[int] = mapped_column(BigId)
    org_id: Mapped[int] = mapped_column(BigId)
    version: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    processed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
