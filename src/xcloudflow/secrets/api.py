"""The secret store under /api/v1/secrets (thin: parse, authorize, call). Write-only: no route
returns a value."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Query, Request, Response

from xcloudflow.iam.schemas import Principal
from xcloudflow.secrets import service
from xcloudflow.secrets.schemas import SecretOut, SecretPut
from xcloudflow.server.deps import app_context, audit_context, principal

router = APIRouter(prefix="/api/v1/secrets", tags=["secrets"])


@router.get("", response_model=list[SecretOut])
def list_secrets(request: Request, who: Principal = Depends(principal)) -> list[SecretOut]:
    """Secret names and their key names; never values."""
    with app_context(request).db.read() as session:
        return service.list_secrets(session=session, principal=who)


@router.get("/{name}", response_model=SecretOut)
def show_secret(request: Request, name: str, who: Principal = Depends(principal)) -> SecretOut:
    with app_context(request).db.read() as session:
        return service.show_secret(session=session, principal=who, name=name)


@router.put("/{name}", response_model=SecretOut, responses={201: {"model": SecretOut}})
def put_secret(
    request: Request, name: str, body: SecretPut, response: Response, who: Principal = Depends(principal)
) -> SecretOut:
    """Set keys of a secret (writers): keys given are added or replaced, others keep their values.
    201 when the secret is new."""
    ctx = app_context(request)
    with ctx.db.write() as session:
        out, created = service.put_secret(
            session=session,
            keyring=ctx.keyring,
            principal=who,
            ctx=audit_context(request, who),
            name=name,
            data=body.data,
        )
    response.status_code = 201 if created else 200
    return out


@router.delete("/{name}", status_code=204)
def delete_secret(
    request: Request,
    name: str,
    key: str | None = Query(None, description="delete only this key"),
    who: Principal = Depends(principal),
) -> Response:
    """Delete a secret, or one of its keys with `?key=K` (writers)."""
    ctx = app_context(request)
    with ctx.db.write() as session:
        service.delete_secret(
            session=session,
            keyring=ctx.keyring,
            principal=who,
            ctx=audit_context(request, who),
            name=name,
            key=key,
        )
    return Response(status_code=204)
