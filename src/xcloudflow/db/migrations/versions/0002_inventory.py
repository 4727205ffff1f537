"""inventory

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from xcloudflow.db.base import UTCDateTime
from xcloudflow.db.dialect import ensure_monthly_partitions

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "dependency_edges",
        sa.Column("org_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("src_uid", sa.Uuid(), nullable=False),
        sa.Column("dst_uid", sa.Uuid(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.CheckConstraint(
            "kind IN ('depends_on', 'parent', 'provider', 'ref')", name=op.f("ck_dependency_edges_kind")
        ),
        sa.PrimaryKeyConstraint("org_id", "src_uid", "dst_uid", "kind", name=op.f("pk_dependency_edges")),
    )
    with op.batch_alter_table("dependency_edges", schema=None) as batch_op:
        batch_op.create_index("ix_dependency_edges_dst", ["org_id", "dst_uid"], unique=False)

    op.create_table(
        "inventory_errors",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("org_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("head_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("state_version", sa.BigInteger(), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_inventory_errors")),
    )
    with op.batch_alter_table("inventory_errors", schema=None) as batch_op:
        batch_op.create_index("ix_inventory_errors_head", ["head_id", "state_version"], unique=False)

    op.create_table(
        "inventory_progress",
        sa.Column("head_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("org_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("last_version", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("head_id", name=op.f("pk_inventory_progress")),
    )
    op.create_table(
        "resource_events",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("at", UTCDateTime(), nullable=False),
        sa.Column("org_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("run_id", sa.Uuid(), nullable=False),
        sa.Column("stable_uid", sa.Uuid(), nullable=False),
        sa.Column("provider", sa.String(length=256), nullable=False),
        sa.Column("resource_type", sa.String(length=256), nullable=False),
        sa.Column("addr", sa.Text(), nullable=False),
        sa.Column("action", sa.String(length=8), nullable=False),
        sa.Column(
            "patch_json",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=True,
        ),
        sa.Column("before_hash", sa.String(length=64), nullable=True),
        sa.Column("after_hash", sa.String(length=64), nullable=True),
        sa.Column("cloud", sa.String(length=32), nullable=True),
        sa.Column("region", sa.String(length=64), nullable=True),
        sa.Column("tool", sa.String(length=16), nullable=False),
        sa.Column("project", sa.String(length=128), nullable=False),
        sa.Column("stack", sa.String(length=128), nullable=False),
        sa.Column("head_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("state_version", sa.BigInteger(), nullable=False),
        sa.CheckConstraint(
            "action IN ('create', 'update', 'delete', 'no-op', 'drift')",
            name=op.f("ck_resource_events_action"),
        ),
        sa.PrimaryKeyConstraint("id", "at", name=op.f("pk_resource_events")),
        postgresql_partition_by="RANGE (at)",
    )
    with op.batch_alter_table("resource_events", schema=None) as batch_op:
        batch_op.create_index("ix_resource_events_head_version", ["head_id", "state_version"], unique=False)
        batch_op.create_index("ix_resource_events_org_at", ["org_id", "at"], unique=False)
        batch_op.create_index("ix_resource_events_uid_at", ["org_id", "stable_uid", "at"], unique=False)

    op.create_table(
        "resource_refs",
        sa.Column("org_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("src_uid", sa.Uuid(), nullable=False),
        sa.Column("value", sa.String(length=512), nullable=False),
        sa.PrimaryKeyConstraint("org_id", "src_uid", "value", name=op.f("pk_resource_refs")),
    )
    with op.batch_alter_table("resource_refs", schema=None) as batch_op:
        batch_op.create_index("ix_resource_refs_value", ["org_id", "value"], unique=False)

    op.create_table(
        "resources_current",
        sa.Column("org_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("stable_uid", sa.Uuid(), nullable=False),
        sa.Column("head_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("tool", sa.String(length=16), nullable=False),
        sa.Column("project", sa.String(length=128), nullable=False),
        sa.Column("stack", sa.String(length=128), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("provider", sa.String(length=256), nullable=False),
        sa.Column("resource_type", sa.String(length=256), nullable=False),
        sa.Column("addr", sa.Text(), nullable=False),
        sa.Column("global_id", sa.Text(), nullable=True),
        sa.Column("native_id", sa.String(length=512), nullable=True),
        sa.Column("cloud", sa.String(length=32), nullable=True),
        sa.Column("region", sa.String(length=64), nullable=True),
        sa.Column(
            "attrs",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("attrs_hash", sa.String(length=64), nullable=False),
        sa.Column("source_hash", sa.String(length=64), nullable=False),
        sa.Column("last_run_id", sa.Uuid(), nullable=False),
        sa.Column("state_version", sa.BigInteger(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.Column("deleted_at", UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("org_id", "stable_uid", name=op.f("pk_resources_current")),
    )
    with op.batch_alter_table("resources_current", schema=None) as batch_op:
        batch_op.create_index("ix_resources_current_global_id", ["org_id", "global_id"], unique=False)
        batch_op.create_index("ix_resources_current_head", ["head_id"], unique=False)
        batch_op.create_index("ix_resources_current_native_id", ["org_id", "native_id"], unique=False)
        batch_op.create_index("ix_resources_current_org_type", ["org_id", "resource_type"], unique=False)

    if op.get_bind().dialect.name == "postgresql":
        # PostgreSQL only: monthly partitions of the event log, JSONB GIN and expression indexes.
        op.execute("CREATE TABLE resource_events_default PARTITION OF resource_events DEFAULT")
        ensure_monthly_partitions(op.get_bind(), "resource_events", months_ahead=2)
        op.create_index(
            "ix_pg_resource_events_patch",
            "resource_events",
            ["patch_json"],
            postgresql_using="gin",
            postgresql_ops={"patch_json": "jsonb_path_ops"},
        )
        op.create_index(
            "ix_pg_resources_current_attrs",
            "resources_current",
            ["attrs"],
            postgresql_using="gin",
            postgresql_ops={"attrs": "jsonb_path_ops"},
        )
        op.execute("CREATE INDEX ix_pg_resources_current_arn ON resources_current ((attrs->>'arn'))")
        op.execute("CREATE INDEX ix_pg_resources_current_attr_id ON resources_current ((attrs->>'id'))")


def downgrade() -> None:
    with op.batch_alter_table("resources_current", schema=None) as batch_op:
        batch_op.drop_index("ix_resources_current_org_type")
        batch_op.drop_index("ix_resources_current_native_id")
        batch_op.drop_index("ix_resources_current_head")
        batch_op.drop_index("ix_resources_current_global_id")

    op.drop_table("resources_current")
    with op.batch_alter_table("resource_refs", schema=None) as batch_op:
        batch_op.drop_index("ix_resource_refs_value")

    op.drop_table("resource_refs")
    with op.batch_alter_table("resource_events", schema=None) as batch_op:
        batch_op.drop_index("ix_resource_events_uid_at")
        batch_op.drop_index("ix_resource_events_org_at")
        batch_op.drop_index("ix_resource_events_head_version")

    op.drop_table("resource_events")
    op.drop_table("inventory_progress")
    with op.batch_alter_table("inventory_errors", schema=None) as batch_op:
        batch_op.drop_index("ix_inventory_errors_head")

    op.drop_table("inventory_errors")
    with op.batch_alter_table("dependency_edges", schema=None) as batch_op:
        batch_op.drop_index("ix_dependency_edges_dst")

    op.drop_table("dependency_edges")
