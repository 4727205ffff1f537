"""Users and tokens under /api/v1 (thin)."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request

from xcloudflow.iam import service
from xcloudflow.iam.schemas import (
    GrantsPut,
    Principal,
    TokenCreate,
    TokenCreated,
    TokenOut,
    UserCreate,
    UserOut,
    WhoAmI,
)
from xcloudflow.server.deps import app_context, audit_context, principal
from xcloudflow.server.params import RowId

router = APIRouter(prefix="/api/v1", tags=["identity"])


@router.get("/whoami", response_model=WhoAmI)
def whoami(who: Principal = Depends(principal)) -> WhoAmI:
    return WhoAmI(user=who.user_name, organization=who.org_name, role=who.role, token_id=who.token_id)


@router.get("/users", response_model=list[UserOut])
def list_users(request: Request, who: Principal = Depends(principal)) -> list[UserOut]:
    with app_context(request).db.read() as session:
        return service.list_users(session=session, principal=who)


@router.post("/users", response_model=UserOut, status_code=201)
def create_user(request: Request, body: UserCreate, who: Principal = Depends(principal)) -> UserOut:
    with app_context(request).db.write() as session:
        return service.create_user(
            session=session, principal=who, ctx=audit_context(request, who), name=body.name, role=body.role
        )


@router.put("/users/{name}/grants", response_model=UserOut)
def set_grants(request: Request, name: str, body: GrantsPut, who: Principal = Depends(principal)) -> UserOut:
    """Set the permissions a member has beyond their role (admins; audited), e.g. `state:read` for a
    reader whose CI plans against the raw state. The body is the whole set: `[]` removes them all."""
    with app_context(request).db.write() as session:
        return service.set_grants(
            session=session, principal=who, ctx=audit_context(request, who), name=name, grants=body.grants
        )


@router.get("/tokens", response_model=list[TokenOut])
def list_tokens(request: Request, who: Principal = Depends(principal)) -> list[TokenOut]:
    with app_context(request).db.read() as session:
        return service.list_tokens(session=session, principal=who)


@router.post("/tokens", response_model=TokenCreated, status_code=201)
def create_token(request: Request, body: TokenCreate, who: Principal = Depends(principal)) -> TokenCreated:
    with app_context(request).db.write() as session:
        return service.create_token(
            session=session,
            principal=who,
            ctx=audit_context(request, who),
            name=body.name,
            user_name=body.user,
            expires_at=body.expires_at,
        )


@router.delete("/tokens/{token_id}", response_model=TokenOut)
def revoke_token(request: Request, token_id: RowId, who: Principal = Depends(principal)) -> TokenOut:
    with app_context(request).db.write() as session:
        return service.revoke_token(
            session=session, principal=who, ctx=audit_context(request, who), token_id=token_id
        )
