"""Conflux I/O models: what the API takes and answers, and what the service functions return.

`schema` is a field name pydantic's BaseModel already uses, so models keep it as `schema_` with the
alias `schema` on the wire.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

PART_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$"
MAX_CONTENT = 1024 * 1024  # characters of one version's content


class RetentionRule(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: str = Field(description="count or days")
    keep: int


class RetentionPolicy(BaseModel):
    model_config = ConfigDict(extra="forbid")

    strategy: str = Field(default="AND", description="AND: delete only what every rule deletes; OR: any")
    rules: list[RetentionRule] = Field(default_factory=list, max_length=10)


class ConfigPut(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    format: str = Field(description="json, yaml, toml, properties, ini or text")
    schema_: str | None = Field(
        default=None, alias="schema", max_length=256 * 1024, description="a JSON Schema (Draft 2020-12)"
    )
    retention: RetentionPolicy | None = None
    description: str | None = Field(default=None, max_length=2000)


class VersionRef(BaseModel):
    id: uuid.UUID
    number: int


class PolicyRuleOut(BaseModel):
    name: str
    priority: int
    version_id: uuid.UUID
    version: int
    labels: dict[str, str]
    percentage: int | None


class PolicyOut(BaseModel):
    revision: int
    rules: list[PolicyRuleOut]


class ConfigOut(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    id: uuid.UUID
    tenant: str
    application: str
    environment: str
    name: str
    address: str
    format: str
    schema_: str | None = Field(alias="schema")
    retention: dict[str, Any] | None
    description: str | None
    created_at: datetime
    created_by: str | None
    updated_at: datetime
    latest_version: int | None
    stable: VersionRef | None
    policy: PolicyOut


class ConfigPage(BaseModel):
    items: list[ConfigOut]
    next_cursor: str | None


class RuleIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(default=None, description='default "rule-<priority>"')
    priority: int
    version: int | None = Field(
        default=None, description="version number (in a publish, omit both to mean the new version)"
    )
    version_id: uuid.UUID | None = None
    labels: dict[str, str] = Field(default_factory=dict)
    percentage: int | None = None


class PolicyIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    rules: list[RuleIn] = Field(default_factory=list, max_length=100)
    expected_revision: int | None = Field(
        default=None, description="the revision the caller saw: 409 when the policy changed since"
    )


class PublishPolicy(BaseModel):
    model_config = ConfigDict(extra="forbid")

    rules: list[RuleIn] = Field(default_factory=list, max_length=100)


class PublishIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    content: str = Field(max_length=MAX_CONTENT)
    description: str | None = Field(default=None, max_length=2000)
    is_stable: bool = False
    policy: PublishPolicy | None = None
    idempotency_key: str | None = Field(default=None, min_length=1, max_length=256)
    expected_version: int | None = Field(
        default=None, ge=0, description="the latest version number the caller saw (0: none): 409 otherwise"
    )
    source: str | None = Field(default=None, max_length=128, description="api, terraform, gitops:<commit>")


class VersionOut(BaseModel):
    id: uuid.UUID
    number: int
    checksum: str
    size: int
    description: str | None
    author: str | None
    source: str | None
    created_at: datetime
    stable: bool
    rules: list[str]
    content: str | None = None


class VersionPage(BaseModel):
    items: list[VersionOut]
    next_cursor: str | None


class PublishOut(BaseModel):
    config_id: uuid.UUID
    version: VersionOut
    stable: VersionRef | None
    policy: PolicyOut
    replayed: bool = False


class ReleaseIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    version: int | None = None
    version_id: uuid.UUID | None = None
    note: str | None = Field(default=None, max_length=2000)


class ReleaseOut(BaseModel):
    id: int
    version: int
    version_id: uuid.UUID
    released_by: str | None
    released_at: datetime
    note: str | None


class DiffOut(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    from_: int = Field(alias="from")
    to: int
    diff: str


class Effective(BaseModel):
    stable: VersionRef | None
    rules: list[PolicyRuleOut]


class HistoryOut(BaseModel):
    effective: Effective
    versions: list[VersionOut]
    releases: list[ReleaseOut]


class ResolveOut(BaseModel):
    config_id: uuid.UUID
    version: int
    version_id: uuid.UUID
    checksum: str
    format: str
    content: str
    rule: str | None


class NotificationOut(BaseModel):
    id: int
    address: str
    name: str
    kind: str
    version: int | None


class WatchOut(BaseModel):
    notifications: list[NotificationOut]
    last_id: int


class RetentionResult(BaseModel):
    config_id: uuid.UUID
    address: str
    deleted: list[int]
