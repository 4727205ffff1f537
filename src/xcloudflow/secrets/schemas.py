"""Secret I/O models. Requests carry values; no response model has a field that could hold one."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from xcloudflow.iam.schemas import NAME_PATTERN

# Kubernetes' Secret key rule: letters, digits, '-', '_' and '.'.
KEY_PATTERN = r"^[A-Za-z0-9._-]{1,253}$"
MAX_KEYS = 100
MAX_VALUE_BYTES = 64 * 1024

__all__ = ["KEY_PATTERN", "MAX_KEYS", "MAX_VALUE_BYTES", "NAME_PATTERN", "SecretOut", "SecretPut"]


class SecretPut(BaseModel):
    """Keys given are set (added or replaced); keys not given keep their values."""

    model_config = ConfigDict(extra="forbid")

    data: dict[str, str] = Field(min_length=1, description="KEY: VALUE pairs (write-only)")


class SecretOut(BaseModel):
    name: str
    keys: list[str] = Field(description="key names only; values are never returned")
    created_at: datetime
    created_by: str | None
    updated_at: datetime
    updated_by: str | None
