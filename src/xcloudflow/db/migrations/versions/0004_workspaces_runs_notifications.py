"""workspaces, runs and notifications: workspaces, variables, code versions, managed resources,
resource versions, snapshots, dependencies, hooks, runs, run transitions, drift findings, notification
destinations and deliveries

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from xcloudflow.db.base import UTCDateTime

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "workspaces",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("org_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("project", sa.String(length=128), nullable=False),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("agent_pool", sa.String(length=128), nullable=False),
        sa.Column("terraform_bin", sa.String(length=1024), nullable=True),
        sa.Column("working_directory", sa.String(length=1024), nullable=False),
        sa.Column("providers_hcl", sa.Text(), nullable=True),
        sa.Column("auto_apply", sa.Boolean(), nullable=False),
        sa.Column("locked", sa.Boolean(), nullable=False),
        sa.Column("lock_reason", sa.Text(), nullable=True),
        sa.Column("locked_by", sa.String(length=128), nullable=True),
        sa.Column("locked_at", UTCDateTime(), nullable=True),
        sa.Column(
            "tags",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("current_code_version_id", sa.BigInteger(), nullable=True),
        sa.Column("drift_interval_minutes", sa.Integer(), nullable=True),
        sa.Column("next_drift_at", UTCDateTime(), nullable=True),
        sa.Column("run_seq", sa.Integer(), nullable=False),
        sa.Column("code_seq", sa.Integer(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("created_by", sa.String(length=128), nullable=True),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["org_id"],
            ["organizations.id"],
            name=op.f("fk_workspaces_org_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_workspaces")),
        sa.UniqueConstraint("org_id", "project", "name", name=op.f("uq_workspaces_org_id_project_name")),
    )
    with op.batch_alter_table("workspaces", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_workspaces_next_drift_at"), ["next_drift_at"], unique=False)

    op.create_table(
        "notification_destinations",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("org_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("workspace_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("format", sa.String(length=16), nullable=False),
        sa.Column(
            "events",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("data_key_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column(
            "sealed_secret", sa.LargeBinary().with_variant(postgresql.BYTEA(), "postgresql"), nullable=True
        ),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("created_by", sa.String(length=128), nullable=True),
        sa.CheckConstraint(
            "format IN ('generic', 'slack', 'feishu')", name=op.f("ck_notification_destinations_format")
        ),
        sa.ForeignKeyConstraint(
            ["data_key_id"],
            ["org_data_keys.id"],
            name=op.f("fk_notification_destinations_data_key_id_org_data_keys"),
        ),
        sa.ForeignKeyConstraint(
            ["org_id"],
            ["organizations.id"],
            name=op.f("fk_notification_destinations_org_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["workspace_id"],
            ["workspaces.id"],
            name=op.f("fk_notification_destinations_workspace_id_workspaces"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_notification_destinations")),
        sa.UniqueConstraint("org_id", "name", name=op.f("uq_notification_destinations_org_id_name")),
    )
    op.create_table(
        "workspace_code_versions",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("workspace_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column(
            "files",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("message", sa.Text(), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("created_by", sa.String(length=128), nullable=True),
        sa.Column("data_key_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("content", sa.LargeBinary().with_variant(postgresql.BYTEA(), "postgresql"), nullable=False),
        sa.ForeignKeyConstraint(
            ["data_key_id"],
            ["org_data_keys.id"],
            name=op.f("fk_workspace_code_versions_data_key_id_org_data_keys"),
        ),
        sa.ForeignKeyConstraint(
            ["workspace_id"],
            ["workspaces.id"],
            name=op.f("fk_workspace_code_versions_workspace_id_workspaces"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_workspace_code_versions")),
        sa.UniqueConstraint(
            "workspace_id", "number", name=op.f("uq_workspace_code_versions_workspace_id_number")
        ),
    )
    with op.batch_alter_table("workspace_code_versions", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_workspace_code_versions_workspace_id"), ["workspace_id"], unique=False
        )

    op.create_table(
        "workspace_hooks",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("workspace_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("stage", sa.String(length=16), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("target", sa.Text(), nullable=False),
        sa.Column("mandatory", sa.Boolean(), nullable=False),
        sa.Column("timeout_seconds", sa.Integer(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("data_key_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column(
            "sealed_secret", sa.LargeBinary().with_variant(postgresql.BYTEA(), "postgresql"), nullable=True
        ),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("created_by", sa.String(length=128), nullable=True),
        sa.CheckConstraint("kind IN ('script', 'http', 'python')", name=op.f("ck_workspace_hooks_kind")),
        sa.CheckConstraint(
            "stage IN ('pre_plan', 'post_plan', 'pre_apply', 'post_apply')",
            name=op.f("ck_workspace_hooks_stage"),
        ),
        sa.ForeignKeyConstraint(
            ["data_key_id"], ["org_data_keys.id"], name=op.f("fk_workspace_hooks_data_key_id_org_data_keys")
        ),
        sa.ForeignKeyConstraint(
            ["workspace_id"],
            ["workspaces.id"],
            name=op.f("fk_workspace_hooks_workspace_id_workspaces"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_workspace_hooks")),
    )
    with op.batch_alter_table("workspace_hooks", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_workspace_hooks_workspace_id"), ["workspace_id"], unique=False)

    op.create_table(
        "workspace_resources",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("workspace_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("address", sa.String(length=255), nullable=False),
        sa.Column("resource_type", sa.String(length=128), nullable=False),
        sa.Column("resource_name", sa.String(length=128), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("current_version", sa.Integer(), nullable=False),
        sa.Column("version_seq", sa.Integer(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("created_by", sa.String(length=128), nullable=True),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["workspace_id"],
            ["workspaces.id"],
            name=op.f("fk_workspace_resources_workspace_id_workspaces"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_workspace_resources")),
        sa.UniqueConstraint(
            "workspace_id", "address", name=op.f("uq_workspace_resources_workspace_id_address")
        ),
    )
    with op.batch_alter_table("workspace_resources", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_workspace_resources_workspace_id"), ["workspace_id"], unique=False
        )

    op.create_table(
        "workspace_resources_snapshot",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("workspace_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column(
            "items",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("created_by", sa.String(length=128), nullable=True),
        sa.ForeignKeyConstraint(
            ["workspace_id"],
            ["workspaces.id"],
            name=op.f("fk_workspace_resources_snapshot_workspace_id_workspaces"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_workspace_resources_snapshot")),
        sa.UniqueConstraint(
            "workspace_id", "name", name=op.f("uq_workspace_resources_snapshot_workspace_id_name")
        ),
    )
    with op.batch_alter_table("workspace_resources_snapshot", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_workspace_resources_snapshot_workspace_id"), ["workspace_id"], unique=False
        )

    op.create_table(
        "workspace_variables",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("workspace_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("key", sa.String(length=128), nullable=False),
        sa.Column("category", sa.String(length=16), nullable=False),
        sa.Column("hcl", sa.Boolean(), nullable=False),
        sa.Column("sensitive", sa.Boolean(), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("value", sa.Text(), nullable=True),
        sa.Column("data_key_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column(
            "sealed_value", sa.LargeBinary().with_variant(postgresql.BYTEA(), "postgresql"), nullable=True
        ),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.CheckConstraint("category IN ('terraform', 'env')", name=op.f("ck_workspace_variables_category")),
        sa.ForeignKeyConstraint(
            ["data_key_id"],
            ["org_data_keys.id"],
            name=op.f("fk_workspace_variables_data_key_id_org_data_keys"),
        ),
        sa.ForeignKeyConstraint(
            ["workspace_id"],
            ["workspaces.id"],
            name=op.f("fk_workspace_variables_workspace_id_workspaces"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_workspace_variables")),
        sa.UniqueConstraint(
            "workspace_id", "category", "key", name=op.f("uq_workspace_variables_workspace_id_category_key")
        ),
    )
    with op.batch_alter_table("workspace_variables", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_workspace_variables_workspace_id"), ["workspace_id"], unique=False
        )

    op.create_table(
        "notification_deliveries",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("destination_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("event", sa.String(length=64), nullable=False),
        sa.Column(
            "payload",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", UTCDateTime(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("response_status", sa.Integer(), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("sent_at", UTCDateTime(), nullable=True),
        sa.CheckConstraint(
            "status IN ('pending', 'sent', 'failed')", name=op.f("ck_notification_deliveries_status")
        ),
        sa.ForeignKeyConstraint(
            ["destination_id"],
            ["notification_destinations.id"],
            name=op.f("fk_notification_deliveries_destination_id_notification_destinations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_notification_deliveries")),
    )
    with op.batch_alter_table("notification_deliveries", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_notification_deliveries_destination_id"), ["destination_id"], unique=False
        )
        batch_op.create_index("ix_notification_deliveries_due", ["status", "next_attempt_at"], unique=False)

    op.create_table(
        "resource_code_versions",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("resource_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("hcl", sa.Text(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("message", sa.Text(), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("created_by", sa.String(length=128), nullable=True),
        sa.ForeignKeyConstraint(
            ["resource_id"],
            ["workspace_resources.id"],
            name=op.f("fk_resource_code_versions_resource_id_workspace_resources"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_resource_code_versions")),
        sa.UniqueConstraint(
            "resource_id", "version", name=op.f("uq_resource_code_versions_resource_id_version")
        ),
    )
    with op.batch_alter_table("resource_code_versions", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_resource_code_versions_resource_id"), ["resource_id"], unique=False
        )

    op.create_table(
        "resource_dependencies",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("workspace_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("resource_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("depends_on_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.CheckConstraint("resource_id <> depends_on_id", name=op.f("ck_resource_dependencies_not_self")),
        sa.ForeignKeyConstraint(
            ["depends_on_id"],
            ["workspace_resources.id"],
            name=op.f("fk_resource_dependencies_depends_on_id_workspace_resources"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["resource_id"],
            ["workspace_resources.id"],
            name=op.f("fk_resource_dependencies_resource_id_workspace_resources"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["workspace_id"],
            ["workspaces.id"],
            name=op.f("fk_resource_dependencies_workspace_id_workspaces"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_resource_dependencies")),
        sa.UniqueConstraint(
            "resource_id", "depends_on_id", name=op.f("uq_resource_dependencies_resource_id_depends_on_id")
        ),
    )
    with op.batch_alter_table("resource_dependencies", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_resource_dependencies_workspace_id"), ["workspace_id"], unique=False
        )

    op.create_table(
        "runs",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("org_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("workspace_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("stage", sa.String(length=32), nullable=False),
        sa.Column("message", sa.Text(), nullable=True),
        sa.Column(
            "targets",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("auto_apply", sa.Boolean(), nullable=False),
        sa.Column("code_version_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column(
            "resource_versions",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=True,
        ),
        sa.Column("plan_job_id", sa.Uuid(), nullable=True),
        sa.Column("apply_job_id", sa.Uuid(), nullable=True),
        sa.Column("has_changes", sa.Boolean(), nullable=True),
        sa.Column(
            "summary",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=True,
        ),
        sa.Column(
            "output_changes",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=True,
        ),
        sa.Column("plan_state_serial", sa.Integer(), nullable=True),
        sa.Column("plan_state_lineage", sa.String(length=64), nullable=True),
        sa.Column(
            "outputs",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=True,
        ),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("error_class", sa.String(length=16), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("created_by", sa.String(length=128), nullable=True),
        sa.Column("started_at", UTCDateTime(), nullable=True),
        sa.Column("planned_at", UTCDateTime(), nullable=True),
        sa.Column("confirmed_at", UTCDateTime(), nullable=True),
        sa.Column("confirmed_by", sa.String(length=128), nullable=True),
        sa.Column("finished_at", UTCDateTime(), nullable=True),
        sa.Column("cancel_requested_at", UTCDateTime(), nullable=True),
        sa.Column("cancel_requested_by", sa.String(length=128), nullable=True),
        sa.CheckConstraint(
            "kind IN ('plan', 'plan_and_apply', 'destroy', 'refresh_only')", name=op.f("ck_runs_kind")
        ),
        sa.CheckConstraint(
            "stage IN ('pending', 'planning', 'planned', 'planned_and_finished', 'confirmed', 'applying', 'applied', 'errored', 'canceled', 'discarded')",
            name=op.f("ck_runs_stage"),
        ),
        sa.ForeignKeyConstraint(
            ["code_version_id"],
            ["workspace_code_versions.id"],
            name=op.f("fk_runs_code_version_id_workspace_code_versions"),
        ),
        sa.ForeignKeyConstraint(
            ["org_id"], ["organizations.id"], name=op.f("fk_runs_org_id_organizations"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["workspace_id"],
            ["workspaces.id"],
            name=op.f("fk_runs_workspace_id_workspaces"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_runs")),
        sa.UniqueConstraint("workspace_id", "number", name=op.f("uq_runs_workspace_id_number")),
    )
    with op.batch_alter_table("runs", schema=None) as batch_op:
        batch_op.create_index("ix_runs_org_created", ["org_id", "created_at"], unique=False)
        batch_op.create_index("ix_runs_stage", ["stage"], unique=False)
        batch_op.create_index("ix_runs_workspace_created", ["workspace_id", "created_at"], unique=False)

    op.create_table(
        "drift_findings",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("org_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("workspace_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("run_id", sa.Uuid(), nullable=False),
        sa.Column("detected_at", UTCDateTime(), nullable=False),
        sa.Column(
            "resources",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["org_id"],
            ["organizations.id"],
            name=op.f("fk_drift_findings_org_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["run_id"], ["runs.id"], name=op.f("fk_drift_findings_run_id_runs"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["workspace_id"],
            ["workspaces.id"],
            name=op.f("fk_drift_findings_workspace_id_workspaces"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_drift_findings")),
    )
    with op.batch_alter_table("drift_findings", schema=None) as batch_op:
        batch_op.create_index(
            "ix_drift_findings_workspace_detected", ["workspace_id", "detected_at"], unique=False
        )

    op.create_table(
        "run_transitions",
        sa.Column("run_id", sa.Uuid(), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("from_stage", sa.String(length=32), nullable=True),
        sa.Column("to_stage", sa.String(length=32), nullable=False),
        sa.Column("at", UTCDateTime(), nullable=False),
        sa.Column("actor", sa.String(length=128), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["run_id"], ["runs.id"], name=op.f("fk_run_transitions_run_id_runs"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("run_id", "seq", name=op.f("pk_run_transitions")),
    )


def downgrade() -> None:
    op.drop_table("run_transitions")
    with op.batch_alter_table("drift_findings", schema=None) as batch_op:
        batch_op.drop_index("ix_drift_findings_workspace_detected")

    op.drop_table("drift_findings")
    with op.batch_alter_table("runs", schema=None) as batch_op:
        batch_op.drop_index("ix_runs_workspace_created")
        batch_op.drop_index("ix_runs_stage")
        batch_op.drop_index("ix_runs_org_created")

    op.drop_table("runs")
    with op.batch_alter_table("resource_dependencies", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_resource_dependencies_workspace_id"))

    op.drop_table("resource_dependencies")
    with op.batch_alter_table("resource_code_versions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_resource_code_versions_resource_id"))

    op.drop_table("resource_code_versions")
    with op.batch_alter_table("notification_deliveries", schema=None) as batch_op:
        batch_op.drop_index("ix_notification_deliveries_due")
        batch_op.drop_index(batch_op.f("ix_notification_deliveries_destination_id"))

    op.drop_table("notification_deliveries")
    with op.batch_alter_table("workspace_variables", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_workspace_variables_workspace_id"))

    op.drop_table("workspace_variables")
    with op.batch_alter_table("workspace_resources_snapshot", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_workspace_resources_snapshot_workspace_id"))

    op.drop_table("workspace_resources_snapshot")
    with op.batch_alter_table("workspace_resources", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_workspace_resources_workspace_id"))

    op.drop_table("workspace_resources")
    with op.batch_alter_table("workspace_hooks", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_workspace_hooks_workspace_id"))

    op.drop_table("workspace_hooks")
    with op.batch_alter_table("workspace_code_versions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_workspace_code_versions_workspace_id"))

    op.drop_table("workspace_code_versions")
    op.drop_table("notification_destinations")
    with op.batch_alter_table("workspaces", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_workspaces_next_drift_at"))

    op.drop_table("workspaces")
