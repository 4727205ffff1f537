"""I/O models of managed resources (resource-level configuration of a workspace).

Types are checked here (422); the address rules, the HCL and the size limit are checked by the
service (400/413) so that every caller gets them.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from xcloudflow.iam.schemas import NAME_PATTERN

ResourceKind = Literal["resource", "data", "module"]


class ResourceCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    address: str
    hcl: str
    description: str | None = Field(default=None, max_length=4096)
    message: str | None = Field(default=None, max_length=4096)


class ResourceUpdate(BaseModel):
    """PUT: a new version (made current); `description`, when sent, replaces the description."""

    model_config = ConfigDict(extra="forbid")

    hcl: str
    message: str | None = Field(default=None, max_length=4096)
    description: str | None = Field(default=None, max_length=4096)


class ResourceOut(BaseModel):
    address: str
    kind: ResourceKind
    resource_type: str
    resource_name: str
    description: str | None
    current_version: int
    latest_version: int
    sha256: str  # of the current version's HCL
    depends_on: list[str]
    created_at: datetime
    created_by: str | None
    updated_at: datetime


class ResourceDetail(ResourceOut):
    hcl: str  # the current version's
    dependents: list[str]


class ResourcePage(BaseModel):
    items: list[ResourceOut]
    next_cursor: str | None


class ResourceVersionOut(BaseModel):
    version: int
    sha256: str
    size: int
    message: str | None
    current: bool
    created_at: datetime
    created_by: str | None


class ResourceVersionDetail(ResourceVersionOut):
    address: str
    hcl: str


class ResourceVersionPage(BaseModel):
    items: list[ResourceVersionOut]
    next_cursor: str | None


class ResourceCompare(BaseModel):
    model_config = ConfigDict(populate_by_name=True, serialize_by_alias=True)

    from_: int = Field(alias="from")
    to: int
    diff: str


class ResourceRollback(BaseModel):
    model_config = ConfigDict(extra="forbid")

    version: int = Field(ge=1)


class DependencyCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    depends_on: str


class DependencyOut(BaseModel):
    resource: str
    depends_on: str
    created_at: datetime


class DependencyList(BaseModel):
    items: list[DependencyOut]


class SnapshotCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=NAME_PATTERN)
    description: str | None = Field(default=None, max_length=4096)


class SnapshotOut(BaseModel):
    name: str
    description: str | None
    items: dict[str, int]  # {address: version}
    created_at: datetime
    created_by: str | None


class SnapshotList(BaseModel):
    items: list[SnapshotOut]


class RestoredResource(BaseModel):
    address: str
    from_version: int
    to_version: int


class SnapshotRestoreOut(BaseModel):
    snapshot: str
    changed: list[RestoredResource]
    unchanged: list[str]
    not_in_snapshot: list[str]  # resources created after the snapshot, left as they are
