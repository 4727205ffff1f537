"""gitops and secrets: the secret store, GitOps sources with their status, and their events

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-23
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from xcloudflow.db.base import UTCDateTime

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")
_BLOB = sa.LargeBinary().with_variant(postgresql.BYTEA(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "secrets",
        sa.Column("id", _ID, nullable=False),
        sa.Column("org_id", _ID, nullable=False),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("keys", _JSON, nullable=False),
        sa.Column("data_key_id", _ID, nullable=False),
        sa.Column("sealed", _BLOB, nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("created_by", sa.String(length=128), nullable=True),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.Column("updated_by", sa.String(length=128), nullable=True),
        sa.ForeignKeyConstraint(
            ["data_key_id"], ["org_data_keys.id"], name=op.f("fk_secrets_data_key_id_org_data_keys")
        ),
        sa.ForeignKeyConstraint(
            ["org_id"], ["organizations.id"], name=op.f("fk_secrets_org_id_organizations"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_secrets")),
        sa.UniqueConstraint("org_id", "name", name=op.f("uq_secrets_org_id_name")),
    )
    op.create_table(
        "gitops_sources",
        sa.Column("id", _ID, nullable=False),
        sa.Column("org_id", _ID, nullable=False),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("ref_kind", sa.String(length=8), nullable=False),
        sa.Column("ref_name", sa.String(length=256), nullable=False),
        sa.Column("interval", sa.String(length=32), nullable=False),
        sa.Column("interval_seconds", sa.Integer(), nullable=False),
        sa.Column("path", sa.String(length=1024), nullable=False),
        sa.Column("secret_ref", sa.String(length=128), nullable=True),
        sa.Column("suspended", sa.Boolean(), nullable=False),
        sa.Column("data_key_id", _ID, nullable=False),
        sa.Column("sealed_webhook_secret", _BLOB, nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("created_by", sa.String(length=128), nullable=True),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.Column("next_sync_at", UTCDateTime(), nullable=False),
        sa.Column("last_attempt_at", UTCDateTime(), nullable=True),
        sa.Column("last_fetched_commit", sa.String(length=40), nullable=True),
        sa.Column("last_fetched_at", UTCDateTime(), nullable=True),
        sa.Column("last_synced_commit", sa.String(length=40), nullable=True),
        sa.Column("last_synced_at", UTCDateTime(), nullable=True),
        sa.Column("ready_status", sa.String(length=8), nullable=False),
        sa.Column("ready_reason", sa.String(length=64), nullable=False),
        sa.Column("ready_message", sa.Text(), nullable=False),
        sa.Column("ready_changed_at", UTCDateTime(), nullable=False),
        sa.Column("documents", _JSON, nullable=False),
        sa.CheckConstraint(
            "ref_kind IN ('branch', 'tag', 'commit')", name=op.f("ck_gitops_sources_ref_kind")
        ),
        sa.CheckConstraint(
            "ready_status IN ('True', 'False', 'Unknown')", name=op.f("ck_gitops_sources_ready_status")
        ),
        sa.ForeignKeyConstraint(
            ["data_key_id"], ["org_data_keys.id"], name=op.f("fk_gitops_sources_data_key_id_org_data_keys")
        ),
        sa.ForeignKeyConstraint(
            ["org_id"],
            ["organizations.id"],
            name=op.f("fk_gitops_sources_org_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_gitops_sources")),
        sa.UniqueConstraint("org_id", "name", name=op.f("uq_gitops_sources_org_id_name")),
    )
    with op.batch_alter_table("gitops_sources", schema=None) as batch_op:
        batch_op.create_index("ix_gitops_sources_due", ["next_sync_at"], unique=False)
    op.create_table(
        "gitops_events",
        sa.Column("id", _ID, nullable=False),
        sa.Column("source_id", _ID, nullable=False),
        sa.Column("type", sa.String(length=8), nullable=False),
        sa.Column("reason", sa.String(length=64), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("commit", sa.String(length=40), nullable=True),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.Column("first_at", UTCDateTime(), nullable=False),
        sa.Column("last_at", UTCDateTime(), nullable=False),
        sa.CheckConstraint("type IN ('Normal', 'Warning')", name=op.f("ck_gitops_events_type")),
        sa.ForeignKeyConstraint(
            ["source_id"],
            ["gitops_sources.id"],
            name=op.f("fk_gitops_events_source_id_gitops_sources"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_gitops_events")),
    )
    with op.batch_alter_table("gitops_events", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_gitops_events_source_id"), ["source_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("gitops_events", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_gitops_events_source_id"))
    op.drop_table("gitops_events")
    with op.batch_alter_table("gitops_sources", schema=None) as batch_op:
        batch_op.drop_index("ix_gitops_sources_due")
    op.drop_table("gitops_sources")
    op.drop_table("secrets")
