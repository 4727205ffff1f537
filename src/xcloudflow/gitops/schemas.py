"""GitOps I/O models: sources (the seed's ConfluxSource CRD fields), their status, events, previews.

`SourceCreate` takes either the flat API body or the seed's Kubernetes document as is
(`apiVersion/kind/metadata/spec`), so `xcf gitops source add -f source.yaml` sends the file unchanged.
The webhook secret is shown once, in `SourceCreated`; no other model has a field for it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from xcloudflow.iam.schemas import NAME_PATTERN

SOURCE_API_VERSION = "gitops.conflux.io/v1alpha1"
SOURCE_KIND = "ConfluxSource"


class GitRef(BaseModel):
    """Exactly one of branch, tag or commit (a 40-hex sha)."""

    model_config = ConfigDict(extra="forbid")

    branch: str | None = Field(default=None, min_length=1, max_length=256)
    tag: str | None = Field(default=None, min_length=1, max_length=256)
    commit: str | None = Field(default=None, pattern=r"^[0-9a-f]{40}$")

    @model_validator(mode="after")
    def _exactly_one(self) -> GitRef:
        given = [k for k in ("branch", "tag", "commit") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError("ref needs exactly one of branch, tag or commit")
        return self


class LocalObjectRef(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=NAME_PATTERN)


class SourceCreate(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    name: str = Field(pattern=NAME_PATTERN)
    url: str = Field(min_length=1, max_length=2048, description="git URL (https, ssh, file) or local path")
    ref: GitRef = Field(default_factory=lambda: GitRef(branch="main"))
    interval: str = Field(default="1m", description='Go duration: "30s", "1m", "1h30m"')
    path: str = Field(default="", max_length=1024, description="directory of the repository to scan")
    secret_ref: LocalObjectRef | None = Field(
        default=None,
        alias="secretRef",
        description="a secret with keys username and password, for https repositories",
    )
    suspend: bool = False
    prune: bool = Field(
        default=False,
        description="delete configs this source published whose document was removed from Git "
        "(off by default, as in Argo CD: they are then reported in status.orphans)",
    )

    @model_validator(mode="before")
    @classmethod
    def _from_document(cls, data: Any) -> Any:
        """The seed's `kind: ConfluxSource` document -> the flat body."""
        if not isinstance(data, dict) or "kind" not in data:
            return data
        if data.get("kind") != SOURCE_KIND or data.get("apiVersion") != SOURCE_API_VERSION:
            raise ValueError(f"a source document must be apiVersion {SOURCE_API_VERSION}, kind {SOURCE_KIND}")
        metadata = data.get("metadata") or {}
        spec = data.get("spec") or {}
        if not isinstance(metadata, dict) or not isinstance(spec, dict):
            raise ValueError("metadata and spec must be mappings")
        unknown = set(data) - {"apiVersion", "kind", "metadata", "spec", "status"}
        if unknown:
            raise ValueError(f"unknown top-level fields: {', '.join(sorted(unknown))}")
        return {"name": metadata.get("name"), **spec}


class SourceUpdate(BaseModel):
    """PATCH a source: only the fields given change (as `kubectl patch` of the spec)."""

    model_config = ConfigDict(extra="forbid")

    prune: bool | None = None
    suspend: bool | None = None

    @model_validator(mode="after")
    def _something(self) -> SourceUpdate:
        if not {k for k in self.model_fields_set if getattr(self, k) is not None}:
            raise ValueError("give at least one of prune, suspend (true or false)")
        return self


class Condition(BaseModel):
    type: Literal["Ready"] = "Ready"
    status: Literal["True", "False", "Unknown"]
    reason: str
    message: str
    last_transition_time: datetime


class DocumentResult(BaseModel):
    path: str = Field(description="repository file (and #N for a later document of the file)")
    line: int | None = None
    address: str | None = Field(default=None, description="tenant/application/environment/name")
    result: Literal["published", "unchanged", "failed", "pruned"]
    version: int | None = None
    message: str | None = None


class OrphanedConfig(BaseModel):
    """A config this source published whose document is gone from Git (Argo CD: OutOfSync, requires
    pruning). It stays in Conflux until pruned (spec.prune) or deleted by hand."""

    address: str = Field(description="tenant/application/environment/name")
    path: str = Field(description="the repository file that defined it")
    version: int | None = Field(default=None, description="its latest version, published by this source")
    requires_pruning: bool = True
    message: str


class SourceStatus(BaseModel):
    last_fetched_commit: str | None
    last_fetched_at: datetime | None
    last_synced_commit: str | None = Field(description="the last commit whose every document synced")
    last_synced_at: datetime | None
    last_attempt_at: datetime | None
    next_sync_at: datetime | None
    sync_status: Literal["Synced", "OutOfSync", "Unknown"] = Field(
        description="as Argo CD: OutOfSync while documents failed, orphans wait for pruning or the "
        "fetched commit is not synced; Unknown before the first fetch and while fetching fails"
    )
    conditions: list[Condition]
    documents: list[DocumentResult]
    orphans: list[OrphanedConfig] = Field(
        default_factory=list, description="configs published by this source whose document left Git"
    )


class SourceOut(BaseModel):
    name: str
    url: str = Field(description="credentials masked")
    ref: GitRef
    interval: str
    path: str
    secret_ref: LocalObjectRef | None
    suspend: bool
    prune: bool
    webhook_path: str
    created_at: datetime
    created_by: str | None
    status: SourceStatus


class SourceCreated(SourceOut):
    webhook_secret: str = Field(
        description="HMAC-SHA256 key for the push webhook (X-Hub-Signature-256); shown only in this answer"
    )


class EventOut(BaseModel):
    id: int
    type: Literal["Normal", "Warning"]
    reason: str
    message: str
    commit: str | None
    count: int
    first_at: datetime
    last_at: datetime


class WebhookOut(BaseModel):
    accepted: bool
    message: str


class PreviewDocument(BaseModel):
    path: str
    line: int | None = None
    address: str | None
    action: Literal["create", "update", "unchanged", "failed", "delete", "orphan"] = Field(
        description="delete: removed from Git, pruned by the sync; orphan: removed from Git, left in "
        "Conflux (prune off, or a document fails)"
    )
    from_version: int | None = None
    stable: bool | None = None
    message: str | None = None
    diff: str | None = Field(default=None, description="unified diff, secrets masked")


class PreviewOut(BaseModel):
    source: str
    ref: str
    commit: str
    documents: list[PreviewDocument]
    markdown: str = Field(description="the same, as a pull-request comment; secrets masked")
