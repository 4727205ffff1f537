"""Notification I/O models: destinations (where events go) and deliveries (the outbox, as people see it).

The HMAC secret is write-only: requests may carry it, no response model has a field for it (only
`has_secret`). `format` and `events` are plain strings here and checked by the service, so a bad value
is answered with a message that lists the known ones.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, SecretStr

from xcloudflow.iam.schemas import NAME_PATTERN

WORKSPACE_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,127}/[A-Za-z0-9][A-Za-z0-9._@-]{0,127}$"


class DestinationCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=NAME_PATTERN)
    url: str = Field(min_length=1, max_length=2048, description="http(s) URL the deliveries are POSTed to")
    format: str = Field(default="generic", description="generic, slack or feishu")
    events: list[str] | None = Field(
        default=None, description="events to deliver; default: every event", max_length=32
    )
    workspace: str | None = Field(
        default=None, pattern=WORKSPACE_PATTERN, description='"project/name"; default: every workspace'
    )
    secret: SecretStr | None = Field(
        default=None,
        min_length=1,
        max_length=1024,
        description="HMAC-SHA256 key (Feishu: the bot's signing secret); write-only",
    )
    enabled: bool = True


class DestinationUpdate(BaseModel):
    """Fields absent stay as they are; `workspace: null` widens to every workspace, `secret: null` drops
    the secret."""

    model_config = ConfigDict(extra="forbid")

    url: str | None = Field(default=None, min_length=1, max_length=2048)
    format: str | None = None
    events: list[str] | None = Field(default=None, max_length=32)
    workspace: str | None = Field(default=None, pattern=WORKSPACE_PATTERN)
    secret: SecretStr | None = Field(default=None, min_length=1, max_length=1024)
    enabled: bool | None = None


class DestinationOut(BaseModel):
    id: int
    name: str
    url: str = Field(description="readers see only the scheme and host: webhook paths are often secrets")
    format: str
    events: list[str]
    workspace: str | None
    enabled: bool
    has_secret: bool
    created_at: datetime
    created_by: str | None


class DeliveryOut(BaseModel):
    id: int
    destination: str
    event: str
    payload: dict[str, Any]
    status: str
    attempts: int
    next_attempt_at: datetime | None = Field(description="when the next attempt is due (pending only)")
    response_status: int | None
    last_error: str | None
    created_at: datetime
    sent_at: datetime | None


class DeliveryPage(BaseModel):
    items: list[DeliveryOut]
    next_cursor: str | None
