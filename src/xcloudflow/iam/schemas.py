"""Identity I/O models and the authenticated principal."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

Role = Literal["admin", "writer", "reader"]
ROLE_RANK = {"reader": 1, "writer": 2, "admin": 3}
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,127}$"


class Permission(StrEnum):
    """Actions finer than the role ranks, where one role must get part of what a resource holds."""

    # A stack's non-sensitive outputs: /outputs, and on the backend a state holding only them (what
    # `terraform_remote_state` reads). HCP's "read outputs".
    STATE_READ_OUTPUTS = "state:read-outputs"
    # The stored state bytes, every secret in them included (backend GET, versions/{n}/content,
    # sensitive output values). HCP's "read state versions".
    STATE_READ = "state:read"


ROLE_PERMISSIONS: dict[str, frozenset[Permission]] = {
    "reader": frozenset({Permission.STATE_READ_OUTPUTS}),
    "writer": frozenset(Permission),
    "admin": frozenset(Permission),
}


@dataclass(frozen=True)
class Principal:
    """Who a request acts as: a user, in one organization, with one role, through one token."""

    user_id: int
    user_name: str
    org_id: int
    org_name: str
    role: str
    token_id: int
    # A job token acts only on the one Terraform stack of its job: (project, stack); None for people.
    stack_scope: tuple[str, str] | None = None
    # Permissions granted to this member beyond the role (see grant_permissions).
    grants: frozenset[Permission] = frozenset()

    def has(self, role: str) -> bool:
        return ROLE_RANK[self.role] >= ROLE_RANK[role]

    def can(self, permission: Permission) -> bool:
        return permission in ROLE_PERMISSIONS[self.role] or permission in self.grants


class UserCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=NAME_PATTERN)
    role: Role = "reader"


class UserOut(BaseModel):
    name: str
    role: str
    created_at: datetime
    disabled: bool
    grants: list[Permission] = Field(default_factory=list, description="permissions beyond the role")


class GrantsPut(BaseModel):
    model_config = ConfigDict(extra="forbid")

    grants: list[Permission] = Field(max_length=len(Permission), description="the whole set; [] removes all")


class TokenCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=128)
    user: str | None = Field(default=None, description="owner; defaults to the caller (admins only)")
    expires_at: datetime | None = None


class TokenOut(BaseModel):
    id: int
    name: str
    user: str
    prefix: str
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None


class TokenCreated(TokenOut):
    token: str = Field(description="the secret; shown only in this answer")


class WhoAmI(BaseModel):
    user: str
    organization: str
    role: str
    token_id: int
