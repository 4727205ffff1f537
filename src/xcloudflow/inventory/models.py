"""Tables of the inventory (seed 000 section 4, tables 3-5, plus progress, errors and ref candidates).

On PostgreSQL `resource_events` is range-partitioned by month on `at` (see the migration); its
primary key therefore includes `at`.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, CheckConstraint, Index, String, Text, Uuid, text
from sqlalchemy.orm import Mapped, mapped_column

from xcloudflow.db.base import Base, BigId, Json, UTCDateTime, utcnow

ACTIONS = ("create", "update", "delete", "no-op", "drift")


class ResourceEvent(Base):
    __tablename__ = "resource_events"
    __table_args__ = (
        CheckConstraint("action IN ('create', 'update', 'delete', 'no-op', 'drift')", name="action"),
        Index("ix_resource_events_uid_at", "org_id", "stable_uid", "at"),
        Index("ix_resource_events_org_at", "org_id", "at"),
        Index("ix_resource_events_head_version", "head_id", "state_version"),
        Index(
            "ix_pg_resource_events_patch",
            "patch_json",
            postgresql_using="gin",
            postgresql_ops={"patch_json": "jsonb_path_ops"},
        ).ddl_if(dialect="postgresql"),
        {"postgresql_partition_by": "RANGE (at)"},
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    at: Mapped[datetime] = mapped_column(UTCDateTime, primary_key=True, default=utcnow)
    org_id: Mapped[int] = mapped_column(BigId)
    run_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    stable_uid: Mapped[uuid.UUID] = mapped_column(Uuid)
    provider: Mapped[str] = mapped_column(String(256))
    resource_type: Mapped[str] = mapped_column(String(256))
    addr: Mapped[str] = mapped_column(Text)
    action: Mapped[str] = mapped_column(String(8))
    patch_json: Mapped[list[dict[str, Any]] | None] = mapped_column(Json)
    before_hash: Mapped[str | None] = mapped_column(String(64))
    after_hash: Mapped[str | None] = mapped_column(String(64))
    cloud: Mapped[str | None] = mapped_column(String(32))
    region: Mapped[str | None] = mapped_column(String(64))
    tool: Mapped[str] = mapped_column(String(16))
    project: Mapped[str] = mapped_column(String(128))
    stack: Mapped[str] = mapped_column(String(128))
    head_id: Mapped[int] = mapped_column(BigId)
    state_version: Mapped[int] = mapped_column(BigInteger)


class ResourceCurrent(Base):
    __tablename__ = "resources_current"
    __table_args__ = (
        Index("ix_resources_current_head", "head_id"),
        Index("ix_resources_current_org_type", "org_id", "resource_type"),
        Index("ix_resources_current_global_id", "org_id", "global_id"),
        Index("ix_resources_current_native_id", "org_id", "native_id"),
        Index(
            "ix_pg_resources_current_attrs",
            "attrs",
            postgresql_using="gin",
            postgresql_ops={"attrs": "jsonb_path_ops"},
        ).ddl_if(dialect="postgresql"),
        Index("ix_pg_resources_current_arn", text("(attrs->>'arn')")).ddl_if(dialect="postgresql"),
        Index("ix_pg_resources_current_attr_id", text("(attrs->>'id')")).ddl_if(dialect="postgresql"),
    )

    org_id: Mapped[int] = mapped_column(BigId, primary_key=True)
    stable_uid: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    head_id: Mapped[int] = mapped_column(BigId)
    tool: Mapped[str] = mapped_column(String(16))
    project: Mapped[str] = mapped_column(String(128))
    stack: Mapped[str] = mapped_column(String(128))
    kind: Mapped[str] = mapped_column(String(16))
    provider: Mapped[str] = mapped_column(String(256))
    resource_type: Mapped[str] = mapped_column(String(256))
    addr: Mapped[str] = mapped_column(Text)
    global_id: Mapped[str | None] = mapped_column(Text)
    native_id: Mapped[str | None] = mapped_column(String(512))
    cloud: Mapped[str | None] = mapped_column(String(32))
    region: Mapped[str | None] = mapped_column(String(64))
    attrs: Mapped[dict[str, Any]] = mapped_column(Json)
    attrs_hash: Mapped[str] = mapped_column(String(64))
    # Keyed hash of the instance as the state stored it (see parsing.ParsedResource.source).
    source_hash: Mapped[str] = mapped_column(String(64))
    last_run_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    state_version: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    deleted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class DependencyEdge(Base):
    __tablename__ = "dependency_edges"
    __table_args__ = (
        CheckConstraint("kind IN ('depends_on', 'parent', 'provider', 'ref')", name="kind"),
        Index("ix_dependency_edges_dst", "org_id", "dst_uid"),
    )

    org_id: Mapped[int] = mapped_column(BigId, primary_key=True)
    src_uid: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    dst_uid: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    kind: Mapped[str] = mapped_column(String(16), primary_key=True)


class ResourceRef(Base):
    """A value in a resource's attributes that looks like another resource's id (ARN, id, self link).

    Joined against `resources_current.global_id` to draw `ref` edges, across stacks and in either
    ingest order.
    """

    __tablename__ = "resource_refs"
    __table_args__ = (Index("ix_resource_refs_value", "org_id", "value"),)

    org_id: Mapped[int] = mapped_column(BigId, primary_key=True)
    src_uid: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    value: Mapped[str] = mapped_column(String(512), primary_key=True)


class InventoryProgress(Base):
    """How far each stack's versions have been turned into events."""

    __tablename__ = "inventory_progress"

    head_id: Mapped[int] = mapped_column(BigId, primary_key=True)
    org_id: Mapped[int] = mapped_column(BigId)
    last_version: Mapped[int] = mapped_column(BigInteger, default=0)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class InventoryError(Base):
    """A stored version that could not be read as a Terraform or Pulumi state."""

    __tablename__ = "inventory_errors"
    __table_args__ = (Index("ix_inventory_errors_head", "head_id", "state_version"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    org_id: Mapped[int] = mapped_column(BigId)
    head_id: Mapped[int] = mapped_column(BigId)
    state_version: Mapped[int] = mapped_column(BigInteger)
    message: Mapped[str] = mapped_column(Text)
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
