"""Workspace I/O models, the inputs a run needs (`RunInputs`) and the domain's tunables.

Shapes follow the issue's contract. Types and enumerations are checked here (422); the domain rules
(paths, pools, identifiers, sizes) are checked by the service (400) so that every caller gets them.
A sensitive value or an http hook's secret never appears in an output model.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from xcloudflow.iam.schemas import NAME_PATTERN
from xcloudflow.workspaces.archive import ArchiveLimits

Category = Literal["terraform", "env"]
HookStage = Literal["pre_plan", "post_plan", "pre_apply", "post_apply"]
HookKind = Literal["script", "http", "python"]
Source = Literal["code", "resources", "empty"]


class WorkspaceSettings(BaseSettings):
    """Upload limits for code versions (XCF_WORKSPACE_CODE_*)."""

    model_config = SettingsConfigDict(env_prefix="XCF_", extra="ignore")

    workspace_code_max_bytes: int = Field(default=50 * 1024 * 1024, gt=0)
    workspace_code_max_unpacked_bytes: int = Field(default=200 * 1024 * 1024, gt=0)
    workspace_code_max_files: int = Field(default=10_000, gt=0)

    @property
    def archive_limits(self) -> ArchiveLimits:
        return ArchiveLimits(
            max_bytes=self.workspace_code_max_bytes,
            max_unpacked_bytes=self.workspace_code_max_unpacked_bytes,
            max_members=self.workspace_code_max_files,
        )


# ---------------------------------------------------------------- workspaces


class WorkspaceCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    project: str = Field(pattern=NAME_PATTERN)
    name: str = Field(pattern=NAME_PATTERN)
    description: str | None = Field(default=None, max_length=4096)
    agent_pool: str = "embedded"
    terraform_bin: str | None = None
    working_directory: str = ""
    providers_hcl: str | None = Field(
        default=None,
        max_length=65536,
        description="provider settings: `provider` blocks and a `terraform` block, written as providers.tf "
        "for resource-level runs",
    )
    auto_apply: bool = False
    tags: list[str] = Field(default_factory=list)
    drift_interval_minutes: int | None = None


class WorkspaceUpdate(BaseModel):
    """PATCH: only the fields sent change; an explicit null clears a nullable field."""

    model_config = ConfigDict(extra="forbid")

    description: str | None = Field(default=None, max_length=4096)
    agent_pool: str | None = None
    terraform_bin: str | None = None
    working_directory: str | None = None
    providers_hcl: str | None = Field(default=None, max_length=65536)
    auto_apply: bool | None = None
    tags: list[str] | None = None
    drift_interval_minutes: int | None = None


class WorkspaceOut(BaseModel):
    id: int
    project: str
    name: str
    description: str | None
    agent_pool: str
    terraform_bin: str | None
    working_directory: str
    providers_hcl: str | None
    auto_apply: bool
    locked: bool
    lock_reason: str | None
    locked_by: str | None
    locked_at: datetime | None
    tags: list[str]
    current_code_version: int | None
    source: Source
    drift_interval_minutes: int | None
    next_drift_at: datetime | None
    created_at: datetime
    created_by: str | None
    updated_at: datetime


class WorkspacePage(BaseModel):
    items: list[WorkspaceOut]
    next_cursor: str | None


class LockRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str = Field(default="", max_length=4096)


# ---------------------------------------------------------------- variables


class VariableSet(BaseModel):
    """Upsert. `value` may be left out to change only the flags of an existing variable, except when
    a sensitive variable becomes non-sensitive: that needs a new value (the old one is never shown)."""

    model_config = ConfigDict(extra="forbid")

    value: str | None = None
    hcl: bool = False
    sensitive: bool = False
    description: str | None = Field(default=None, max_length=4096)


class VariableOut(BaseModel):
    key: str
    category: str
    value: str | None = Field(description="null when the variable is sensitive")
    hcl: bool
    sensitive: bool
    description: str | None
    created_at: datetime
    updated_at: datetime


# ---------------------------------------------------------------- code versions


class CodeFile(BaseModel):
    path: str
    size: int
    sha256: str


class CodeVersionOut(BaseModel):
    number: int
    sha256: str
    size: int
    files: list[CodeFile]
    message: str | None
    created_at: datetime
    created_by: str | None
    current: bool


class FileChange(BaseModel):
    path: str
    diff: str


class CodeCompare(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    from_: int = Field(alias="from")
    to: int
    added: list[str]
    removed: list[str]
    changed: list[FileChange]


# ---------------------------------------------------------------- hooks


class HookCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    stage: HookStage
    kind: HookKind
    target: str
    mandatory: bool = True
    timeout_seconds: int = 60
    secret: str | None = Field(default=None, description="http hooks: the HMAC key (write-only)")


class HookOut(BaseModel):
    id: int
    stage: str
    kind: str
    target: str
    mandatory: bool
    timeout_seconds: int
    position: int
    has_secret: bool
    created_at: datetime
    created_by: str | None


# ---------------------------------------------------------------- what a run needs


@dataclass
class RunInputs:
    """Everything a run takes from its workspace, resolved at the moment the run is queued."""

    code_version_id: int | None
    code_sha256: str | None
    code_number: int | None
    resource_versions: dict[str, int] | None  # resources mode: {address: current version}
    files: dict[str, str] = field(default_factory=dict)  # generated files (resources mode)
    tfvars: dict[str, Any] = field(default_factory=dict)  # non-HCL terraform vars -> terraform.tfvars.json
    hcl_vars: dict[str, str] = field(default_factory=dict)  # HCL terraform vars -> xcf.auto.tfvars
    env: dict[str, str] = field(default_factory=dict)
    sensitive: list[str] = field(default_factory=list)  # every sensitive value, for masking
    hooks: list[dict[str, Any]] = field(default_factory=list)
