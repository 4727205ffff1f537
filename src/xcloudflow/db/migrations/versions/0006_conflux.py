"""conflux: environments, configs, versions, releases, policy rules, publish requests, notifications

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-23
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from xcloudflow.db.base import UTCDateTime

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BIGID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")
BLOB = sa.LargeBinary().with_variant(postgresql.BYTEA(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "conflux_environments",
        sa.Column("id", BIGID, nullable=False),
        sa.Column("org_id", BIGID, nullable=False),
        sa.Column("tenant", sa.String(length=128), nullable=False),
        sa.Column("application", sa.String(length=128), nullable=False),
        sa.Column("environment", sa.String(length=128), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["org_id"],
            ["organizations.id"],
            name=op.f("fk_conflux_environments_org_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_conflux_environments")),
        sa.UniqueConstraint(
            "org_id",
            "tenant",
            "application",
            "environment",
            name=op.f("uq_conflux_environments_org_id_tenant_application_environment"),
        ),
    )
    op.create_table(
        "conflux_configs",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("org_id", BIGID, nullable=False),
        sa.Column("environment_id", BIGID, nullable=False),
        sa.Column("tenant", sa.String(length=128), nullable=False),
        sa.Column("application", sa.String(length=128), nullable=False),
        sa.Column("environment", sa.String(length=128), nullable=False),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("format", sa.String(length=16), nullable=False),
        sa.Column("schema_text", sa.Text(), nullable=True),
        sa.Column("retention", JSON, nullable=True),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("version_seq", sa.Integer(), nullable=False),
        sa.Column("stable_version_id", sa.Uuid(), nullable=True),
        sa.Column("policy_revision", sa.Integer(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("created_by", sa.String(length=128), nullable=True),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.CheckConstraint(
            "format IN ('json', 'yaml', 'toml', 'properties', 'ini', 'text')",
            name=op.f("ck_conflux_configs_format"),
        ),
        sa.ForeignKeyConstraint(
            ["environment_id"],
            ["conflux_environments.id"],
            name=op.f("fk_conflux_configs_environment_id_conflux_environments"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["org_id"],
            ["organizations.id"],
            name=op.f("fk_conflux_configs_org_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_conflux_configs")),
        sa.UniqueConstraint(
            "org_id",
            "tenant",
            "application",
            "environment",
            "name",
            name=op.f("uq_conflux_configs_org_id_tenant_application_environment_name"),
        ),
    )
    op.create_table(
        "conflux_notifications",
        sa.Column("id", BIGID, nullable=False),
        sa.Column("environment_id", BIGID, nullable=False),
        sa.Column("config_id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("version", sa.Integer(), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.CheckConstraint(
            "kind IN ('publish', 'release', 'policy', 'config', 'delete')",
            name=op.f("ck_conflux_notifications_kind"),
        ),
        sa.ForeignKeyConstraint(
            ["environment_id"],
            ["conflux_environments.id"],
            name=op.f("fk_conflux_notifications_environment_id_conflux_environments"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_conflux_notifications")),
    )
    with op.batch_alter_table("conflux_notifications", schema=None) as batch_op:
        batch_op.create_index("ix_conflux_notifications_created", ["created_at"], unique=False)
        batch_op.create_index("ix_conflux_notifications_env", ["environment_id", "id"], unique=False)

    op.create_table(
        "conflux_publish_requests",
        sa.Column("config_id", sa.Uuid(), nullable=False),
        sa.Column("key", sa.String(length=256), nullable=False),
        sa.Column("request_hash", sa.String(length=64), nullable=False),
        sa.Column("result", JSON, nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["config_id"],
            ["conflux_configs.id"],
            name=op.f("fk_conflux_publish_requests_config_id_conflux_configs"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("config_id", "key", name=op.f("pk_conflux_publish_requests")),
    )
    op.create_table(
        "conflux_releases",
        sa.Column("id", BIGID, nullable=False),
        sa.Column("config_id", sa.Uuid(), nullable=False),
        sa.Column("version_id", sa.Uuid(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("released_by", sa.String(length=128), nullable=True),
        sa.Column("released_at", UTCDateTime(), nullable=False),
        sa.Column("note", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["config_id"],
            ["conflux_configs.id"],
            name=op.f("fk_conflux_releases_config_id_conflux_configs"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_conflux_releases")),
    )
    with op.batch_alter_table("conflux_releases", schema=None) as batch_op:
        batch_op.create_index("ix_conflux_releases_config", ["config_id", "id"], unique=False)

    op.create_table(
        "conflux_versions",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("config_id", sa.Uuid(), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("checksum", sa.String(length=64), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("author", sa.String(length=128), nullable=True),
        sa.Column("source", sa.String(length=128), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("data_key_id", BIGID, nullable=False),
        sa.Column("content", BLOB, nullable=False),
        sa.ForeignKeyConstraint(
            ["config_id"],
            ["conflux_configs.id"],
            name=op.f("fk_conflux_versions_config_id_conflux_configs"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["data_key_id"], ["org_data_keys.id"], name=op.f("fk_conflux_versions_data_key_id_org_data_keys")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_conflux_versions")),
        sa.UniqueConstraint("config_id", "number", name=op.f("uq_conflux_versions_config_id_number")),
    )
    op.create_table(
        "conflux_rules",
        sa.Column("id", BIGID, nullable=False),
        sa.Column("config_id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("priority", sa.Integer(), nullable=False),
        sa.Column("version_id", sa.Uuid(), nullable=False),
        sa.Column("labels", JSON, nullable=False),
        sa.Column("percentage", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["config_id"],
            ["conflux_configs.id"],
            name=op.f("fk_conflux_rules_config_id_conflux_configs"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["version_id"], ["conflux_versions.id"], name=op.f("fk_conflux_rules_version_id_conflux_versions")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_conflux_rules")),
        sa.UniqueConstraint("config_id", "name", name=op.f("uq_conflux_rules_config_id_name")),
    )
    with op.batch_alter_table("conflux_rules", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_conflux_rules_version_id"), ["version_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("conflux_rules", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_conflux_rules_version_id"))
    op.drop_table("conflux_rules")
    op.drop_table("conflux_versions")
    with op.batch_alter_table("conflux_releases", schema=None) as batch_op:
        batch_op.drop_index("ix_conflux_releases_config")
    op.drop_table("conflux_releases")
    op.drop_table("conflux_publish_requests")
    with op.batch_alter_table("conflux_notifications", schema=None) as batch_op:
        batch_op.drop_index("ix_conflux_notifications_env")
        batch_op.drop_index("ix_conflux_notifications_created")
    op.drop_table("conflux_notifications")
    op.drop_table("conflux_configs")
    op.drop_table("conflux_environments")
