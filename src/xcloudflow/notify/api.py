"""Notification destinations and their deliveries under /api/v1 (thin: parse, authorize, call)."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Query, Request

from xcloudflow.iam.schemas import Principal
from xcloudflow.notify import service
from xcloudflow.notify.schemas import (
    DeliveryOut,
    DeliveryPage,
    DestinationCreate,
    DestinationOut,
    DestinationUpdate,
)
from xcloudflow.server.deps import app_context, audit_context, principal

router = APIRouter(prefix="/api/v1/notification-destinations", tags=["notifications"])


@router.post("", response_model=DestinationOut, status_code=201)
def create_destination(
    request: Request, body: DestinationCreate, who: Principal = Depends(principal)
) -> DestinationOut:
    """Add a destination (admins). `secret` is the HMAC key; it is stored sealed and never returned."""
    ctx = app_context(request)
    with ctx.db.write() as session:
        return service.create_destination(
            session=session, keyring=ctx.keyring, principal=who, ctx=audit_context(request, who), body=body
        )


@router.get("", response_model=list[DestinationOut])
def list_destinations(request: Request, who: Principal = Depends(principal)) -> list[DestinationOut]:
    with app_context(request).db.read() as session:
        return service.list_destinations(session=session, principal=who)


@router.get("/{name}", response_model=DestinationOut)
def show_destination(request: Request, name: str, who: Principal = Depends(principal)) -> DestinationOut:
    with app_context(request).db.read() as session:
        return service.show_destination(session=session, principal=who, name=name)


@router.patch("/{name}", response_model=DestinationOut)
def update_destination(
    request: Request, name: str, body: DestinationUpdate, who: Principal = Depends(principal)
) -> DestinationOut:
    ctx = app_context(request)
    with ctx.db.write() as session:
        return service.update_destination(
            session=session,
            keyring=ctx.keyring,
            principal=who,
            ctx=audit_context(request, who),
            name=name,
            body=body,
        )


@router.delete("/{name}", response_model=DestinationOut)
def delete_destination(request: Request, name: str, who: Principal = Depends(principal)) -> DestinationOut:
    """Delete a destination and its delivery history; queued deliveries are dropped."""
    with app_context(request).db.write() as session:
        return service.delete_destination(
            session=session, principal=who, ctx=audit_context(request, who), name=name
        )


@router.post("/{name}/test", response_model=DeliveryOut, status_code=201)
def test_destination(request: Request, name: str, who: Principal = Depends(principal)) -> DeliveryOut:
    """Queue a `test` delivery (sent within seconds by the server's sender) and return it."""
    with app_context(request).db.write() as session:
        return service.queue_test(session=session, principal=who, ctx=audit_context(request, who), name=name)


@router.get("/{name}/deliveries", response_model=DeliveryPage)
def list_deliveries(
    request: Request,
    name: str,
    status: str | None = Query(None, description="pending, sent or failed"),
    cursor: str | None = None,
    limit: int = Query(50),
    who: Principal = Depends(principal),
) -> DeliveryPage:
    """Recent deliveries, newest first: status, attempts, the last response status and error."""
    with app_context(request).db.read() as session:
        return service.list_deliveries(
            session=session, principal=who, name=name, status=status, cursor=cursor, limit=limit
        )
