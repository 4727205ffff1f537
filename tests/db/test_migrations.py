"""The Alembic chain builds exactly the models' schema, on SQLite and PostgreSQL, and goes down again."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

import xcloudflow.audit.models
import xcloudflow.compose.models
import xcloudflow.conflux.models
import xcloudflow.gitops.models
import xcloudflow.iam.models
import xcloudflow.inventory.models
import xcloudflow.jobs.models
import xcloudflow.keys.models
import xcloudflow.notify.models
import xcloudflow.runs.models
import xcloudflow.secrets.models
import xcloudflow.state.models
import xcloudflow.workspaces.models  # noqa: F401 - registers the tables
from xcloudflow.db import Base, Database, migrate


def test_migrated_database_matches_models(database_url: str) -> None:
    db = Database(database_url)
    postgres = db.engine.dialect.name == "postgresql"

    def include(obj, name, type_, reflected, compare_to):  # type: ignore[no-untyped-def]
        if type_ == "table" and name and name.startswith("resource_events_"):
            return False  # monthly partitions, made at run time
        if type_ == "index" and name and name.startswith("ix_pg_"):
            return postgres  # PostgreSQL-only indexes
        return True

    with db.engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"compare_type": True, "include_object": include})
        diff = compare_metadata(ctx, Base.metadata)
    db.dispose()
    assert diff == []


def test_at_head_and_downgrade_upgrade(database_url: str) -> None:
    db = Database(database_url)
    assert migrate.is_at_head(db)
    migrate.downgrade(db, "base")
    assert migrate.current_revision(db) is None
    migrate.upgrade(db)
    assert migrate.is_at_head(db)
    db.dispose()
