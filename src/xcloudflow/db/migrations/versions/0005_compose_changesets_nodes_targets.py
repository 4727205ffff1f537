"""Control plane: ChangeSets, their nodes and reconcile targets (issue 5).

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-23 14:28:35.378084
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from xcloudflow.db.base import UTCDateTime

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "compose_changesets",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("org_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("environment", sa.String(length=128), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("repo", sa.String(length=2048), nullable=False),
        sa.Column("ref", sa.String(length=256), nullable=True),
        sa.Column("commit", sa.String(length=64), nullable=True),
        sa.Column("apply_requested", sa.Boolean(), nullable=False),
        sa.Column(
            "context",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column(
            "summary",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=True,
        ),
        sa.Column("policy_blocking", sa.Boolean(), nullable=False),
        sa.Column("override_by", sa.String(length=128), nullable=True),
        sa.Column("override_reason", sa.Text(), nullable=True),
        sa.Column("override_at", UTCDateTime(), nullable=True),
        sa.Column("rollback_of", sa.Uuid(), nullable=True),
        sa.Column("bundle", sa.LargeBinary().with_variant(postgresql.BYTEA(), "postgresql"), nullable=True),
        sa.Column("bundle_sha256", sa.String(length=64), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("created_by", sa.String(length=128), nullable=True),
        sa.Column("apply_started_at", UTCDateTime(), nullable=True),
        sa.Column("finished_at", UTCDateTime(), nullable=True),
        sa.CheckConstraint(
            "kind IN ('apply', 'rollback', 'reconcile', 'gc')", name=op.f("ck_compose_changesets_kind")
        ),
        sa.CheckConstraint(
            "status IN ('planning', 'planned', 'blocked', 'applying', 'applied', 'failed', 'rejected', 'discarded', 'rolled_back')",
            name=op.f("ck_compose_changesets_status"),
        ),
        sa.ForeignKeyConstraint(
            ["org_id"],
            ["organizations.id"],
            name=op.f("fk_compose_changesets_org_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_compose_changesets")),
    )
    with op.batch_alter_table("compose_changesets", schema=None) as batch_op:
        batch_op.create_index("ix_compose_changesets_org_created", ["org_id", "created_at"], unique=False)
        batch_op.create_index("ix_compose_changesets_status", ["status"], unique=False)

    op.create_table(
        "compose_targets",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("org_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("environment", sa.String(length=128), nullable=False),
        sa.Column("key", sa.String(length=256), nullable=False),
        sa.Column("composition", sa.String(length=512), nullable=False),
        sa.Column("engine", sa.String(length=16), nullable=False),
        sa.Column("layer", sa.String(length=16), nullable=False),
        sa.Column(
            "route",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column(
            "inputs",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("ref", sa.String(length=512), nullable=False),
        sa.Column("workspace", sa.String(length=300), nullable=True),
        sa.Column("code_version", sa.Integer(), nullable=True),
        sa.Column("changeset_id", sa.Uuid(), nullable=False),
        sa.Column("commit", sa.String(length=64), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("applied_at", UTCDateTime(), nullable=False),
        sa.Column("next_check_at", UTCDateTime(), nullable=True),
        sa.Column("expires_at", UTCDateTime(), nullable=True),
        sa.Column("check_run_id", sa.Uuid(), nullable=True),
        sa.Column("check_job_id", sa.Uuid(), nullable=True),
        sa.Column("last_checked_at", UTCDateTime(), nullable=True),
        sa.Column("drifted_at", UTCDateTime(), nullable=True),
        sa.Column(
            "drift_summary",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=True,
        ),
        sa.CheckConstraint("status IN ('active', 'gone')", name=op.f("ck_compose_targets_status")),
        sa.ForeignKeyConstraint(
            ["org_id"],
            ["organizations.id"],
            name=op.f("fk_compose_targets_org_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_compose_targets")),
        sa.UniqueConstraint(
            "org_id", "environment", "key", name=op.f("uq_compose_targets_org_id_environment_key")
        ),
    )
    with op.batch_alter_table("compose_targets", schema=None) as batch_op:
        batch_op.create_index("ix_compose_targets_expires", ["expires_at"], unique=False)
        batch_op.create_index("ix_compose_targets_next_check", ["next_check_at"], unique=False)

    op.create_table(
        "compose_nodes",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("changeset_id", sa.Uuid(), nullable=False),
        sa.Column("org_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("environment", sa.String(length=128), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(length=256), nullable=False),
        sa.Column("composition", sa.String(length=512), nullable=False),
        sa.Column("module", sa.String(length=128), nullable=False),
        sa.Column("ref", sa.String(length=512), nullable=False),
        sa.Column("engine", sa.String(length=16), nullable=False),
        sa.Column("layer", sa.String(length=16), nullable=False),
        sa.Column(
            "depends_on",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column(
            "route",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column(
            "inputs",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("action", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("waiting_for", sa.Text(), nullable=True),
        sa.Column(
            "plan",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=True,
        ),
        sa.Column(
            "policy",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=True,
        ),
        sa.Column("approval_required", sa.Boolean(), nullable=False),
        sa.Column("change_window", sa.String(length=64), nullable=True),
        sa.Column("decision", sa.String(length=16), nullable=True),
        sa.Column("decided_by", sa.String(length=128), nullable=True),
        sa.Column("decided_at", UTCDateTime(), nullable=True),
        sa.Column("decision_reason", sa.Text(), nullable=True),
        sa.Column("workspace", sa.String(length=300), nullable=True),
        sa.Column("run_id", sa.Uuid(), nullable=True),
        sa.Column("job_id", sa.Uuid(), nullable=True),
        sa.Column(
            "snapshot",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=True,
        ),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", UTCDateTime(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("started_at", UTCDateTime(), nullable=True),
        sa.Column("applied_at", UTCDateTime(), nullable=True),
        sa.Column("finished_at", UTCDateTime(), nullable=True),
        sa.CheckConstraint(
            "status IN ('pending', 'planning', 'planned', 'no_changes', 'awaiting_approval', 'waiting', 'backing_up', 'applying', 'observing', 'applied', 'failed', 'skipped', 'rejected', 'discarded')",
            name=op.f("ck_compose_nodes_status"),
        ),
        sa.ForeignKeyConstraint(
            ["changeset_id"],
            ["compose_changesets.id"],
            name=op.f("fk_compose_nodes_changeset_id_compose_changesets"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["org_id"],
            ["organizations.id"],
            name=op.f("fk_compose_nodes_org_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_compose_nodes")),
        sa.UniqueConstraint("changeset_id", "key", name=op.f("uq_compose_nodes_changeset_id_key")),
    )
    with op.batch_alter_table("compose_nodes", schema=None) as batch_op:
        batch_op.create_index(
            "ix_compose_nodes_env_status", ["org_id", "environment", "status"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("compose_nodes", schema=None) as batch_op:
        batch_op.drop_index("ix_compose_nodes_env_status")

    op.drop_table("compose_nodes")
    with op.batch_alter_table("compose_targets", schema=None) as batch_op:
        batch_op.drop_index("ix_compose_targets_next_check")
        batch_op.drop_index("ix_compose_targets_expires")

    op.drop_table("compose_targets")
    with op.batch_alter_table("compose_changesets", schema=None) as batch_op:
        batch_op.drop_index("ix_compose_changesets_status")
        batch_op.drop_index("ix_compose_changesets_org_created")

    op.drop_table("compose_changesets")
