"""Job queue I/O models: the people-facing API (/api/v1) and the agent-facing API (/api/agent/v1)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from xcloudflow.iam.schemas import NAME_PATTERN

JobStatus = Literal["queued", "claimed", "running", "succeeded", "failed", "canceled", "errored"]
Outcome = Literal["succeeded", "failed", "canceled"]
KIND_PATTERN = r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$"
ARTIFACT_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$"


# ---------------------------------------------------------------- people: pools, tokens, agents, jobs


class PoolCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=NAME_PATTERN)


class PoolOut(BaseModel):
    id: int
    name: str
    created_at: datetime
    created_by: str | None
    agents_online: int


class PoolTokenCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=128)


class PoolTokenOut(BaseModel):
    id: int
    pool: str
    name: str
    prefix: str
    created_at: datetime
    created_by: str | None
    revoked_at: datetime | None
    last_used_at: datetime | None


class PoolTokenCreated(PoolTokenOut):
    token: str = Field(description="the secret `xcfa_...`; shown only in this answer")


class AgentOut(BaseModel):
    id: int
    pool: str
    name: str
    hostname: str
    version: str
    capacity: int
    kinds: list[str]
    status: Literal["online", "offline"]
    registered_at: datetime
    last_heartbeat_at: datetime


class JobCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: str = Field(pattern=KIND_PATTERN, max_length=64)
    payload: dict[str, Any] = Field(default_factory=dict)
    pool: str = Field(default="embedded", pattern=NAME_PATTERN)
    max_attempts: int = Field(default=1, ge=1, le=10)


class JobOut(BaseModel):
    id: uuid.UUID
    kind: str
    payload: dict[str, Any]
    pool: str
    status: JobStatus
    attempts: int
    max_attempts: int
    agent: str | None
    created_at: datetime
    created_by: str | None
    claimed_at: datetime | None
    started_at: datetime | None
    finished_at: datetime | None
    lease_expires_at: datetime | None
    result: dict[str, Any] | None
    error: str | None
    cancel_requested_at: datetime | None


class JobPage(BaseModel):
    items: list[JobOut]
    next_cursor: str | None


class JobLogLine(BaseModel):
    seq: int
    at: datetime
    text: str


class JobLogPage(BaseModel):
    items: list[JobLogLine]
    last_seq: int = Field(description="pass as `after` to read on")
    more: bool


class ArtifactOut(BaseModel):
    name: str
    size: int
    sha256: str
    created_at: datetime


# ---------------------------------------------------------------- agents


class AgentRegister(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=NAME_PATTERN)
    hostname: str = Field(min_length=1, max_length=255)
    version: str = Field(min_length=1, max_length=64)
    capacity: int = Field(default=1, ge=1, le=64)
    kinds: list[str] = Field(min_length=1, max_length=100)
    pool: str | None = Field(default=None, description="if given, must be the pool of the token")


class AgentRegistered(BaseModel):
    agent_id: int
    agent_token: str = Field(description="`xcfa_...`, for every other agent route; shown only here")
    pool: str
    heartbeat_seconds: float
    lease_seconds: float


class Heartbeat(BaseModel):
    model_config = ConfigDict(extra="forbid")

    running: list[uuid.UUID] = Field(default_factory=list, max_length=1000)


class HeartbeatAck(BaseModel):
    lease_expires_at: datetime
    lost: list[uuid.UUID] = Field(description="jobs reported running that are no longer this agent's")


class JobAssignment(BaseModel):
    """What an agent receives when it claims a job: the spec and the job's own token."""

    id: uuid.UUID
    kind: str
    payload: dict[str, Any]
    attempt: int
    token: str = Field(description="`xcfj_...`, valid for this job's routes until it finishes")
    lease_expires_at: datetime


class LogAppend(BaseModel):
    model_config = ConfigDict(extra="forbid")

    chunks: list[str] = Field(min_length=1, max_length=1000)


class LogAppended(BaseModel):
    last_seq: int


class JobFinish(BaseModel):
    model_config = ConfigDict(extra="forbid")

    outcome: Outcome
    result: dict[str, Any] | None = None
    error: str | None = Field(default=None, max_length=64 * 1024)
    retryable: bool = Field(default=False, description="a failure worth another attempt (max_attempts)")


class CancelSignal(BaseModel):
    cancel_requested: bool
    requested_at: datetime | None
