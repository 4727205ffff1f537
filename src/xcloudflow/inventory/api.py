"""JSON API of the inventory: resources, events, dependency graph, parse errors (thin).

Every route needs a token (readers may read) and sees only the caller's organization. Unknown query
parameters are refused with a 400 that names them, so a misspelt filter never silently widens a
listing; the allowed names are read from each route's own declaration.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute

from xcloudflow.errors import Invalid
from xcloudflow.iam.schemas import Principal
from xcloudflow.inventory import graph, queries
from xcloudflow.inventory.schemas import (
    BlastRadius,
    Direction,
    EventCount,
    EventPage,
    Graph,
    InventoryErrorOut,
    ResourceDetail,
    ResourcePage,
)
from xcloudflow.server.deps import app_context, principal


def _query_names(dependant: Dependant) -> set[str]:
    names = {p.alias for p in dependant.query_params}
    for sub in dependant.dependencies:
        names |= _query_names(sub)
    return names


def known_query_params(request: Request) -> None:
    route = request.scope.get("route")
    if not isinstance(route, APIRoute):
        return
    allowed = _query_names(route.dependant)
    unknown = sorted(set(request.query_params) - allowed)
    if unknown:
        raise Invalid(
            f"unknown query parameter {unknown[0]!r}; allowed: {', '.join(sorted(allowed)) or 'none'}",
            details={"field": unknown[0], "unknown": unknown, "allowed": sorted(allowed)},
        )


# Authentication first (401 before any 400), then the parameter check; FastAPI caches `principal`.
router = APIRouter(
    prefix="/api/v1",
    tags=["inventory"],
    dependencies=[Depends(principal), Depends(known_query_params)],
)
LIMIT = Query(100, description="page size, 1-500")


@router.get("/resources", response_model=ResourcePage)
def list_resources(
    request: Request,
    tool: str | None = None,
    project: str | None = None,
    stack: str | None = None,
    provider: str | None = None,
    type: str | None = Query(None, description="resource type, e.g. aws_vpc"),
    cloud: str | None = None,
    region: str | None = None,
    kind: str | None = Query(None, description="managed, data, stack, provider or component"),
    q: str | None = Query(None, description="text in the address (case-insensitive)"),
    attr: list[str] = Query([], description="PATH:VALUE on the attributes, e.g. tags.env:prod; repeatable"),
    include_deleted: bool = False,
    cursor: str | None = None,
    limit: int = LIMIT,
    who: Principal = Depends(principal),
) -> ResourcePage:
    with app_context(request).db.read() as session:
        return queries.list_resources(
            session=session,
            org_id=who.org_id,
            tool=tool,
            project=project,
            stack=stack,
            provider=provider,
            resource_type=type,
            cloud=cloud,
            region=region,
            kind=kind,
            q=q,
            attr=attr,
            include_deleted=include_deleted,
            cursor=cursor,
            limit=limit,
        )


@router.get("/resources/{uid}", response_model=ResourceDetail)
def show_resource(request: Request, uid: str, who: Principal = Depends(principal)) -> ResourceDetail:
    stable_uid = queries.parse_uid(uid)
    with app_context(request).db.read() as session:
        return queries.show_resource(session=session, org_id=who.org_id, uid=stable_uid)


@router.get("/resources/{uid}/history", response_model=EventPage)
def resource_history(
    request: Request,
    uid: str,
    cursor: str | None = None,
    limit: int = LIMIT,
    who: Principal = Depends(principal),
) -> EventPage:
    stable_uid = queries.parse_uid(uid)
    with app_context(request).db.read() as session:
        return queries.resource_history(
            session=session, org_id=who.org_id, uid=stable_uid, cursor=cursor, limit=limit
        )


@router.get("/events", response_model=EventPage)
def list_events(
    request: Request,
    since: datetime | None = Query(None, description="ISO 8601; without an offset, UTC"),
    until: datetime | None = Query(None, description="exclusive"),
    action: str | None = Query(None, description="create, update, delete, no-op or drift"),
    tool: str | None = None,
    project: str | None = None,
    stack: str | None = None,
    type: str | None = None,
    run_id: str | None = None,
    cursor: str | None = None,
    limit: int = LIMIT,
    who: Principal = Depends(principal),
) -> EventPage:
    run = queries.parse_uid(run_id, field="run_id") if run_id is not None else None
    with app_context(request).db.read() as session:
        return queries.list_events(
            session=session,
            org_id=who.org_id,
            since=since,
            until=until,
            action=action,
            tool=tool,
            project=project,
            stack=stack,
            resource_type=type,
            run_id=run,
            cursor=cursor,
            limit=limit,
        )


@router.get("/events/summary", response_model=list[EventCount])
def event_summary(
    request: Request,
    since: datetime | None = None,
    until: datetime | None = None,
    tool: str | None = None,
    project: str | None = None,
    stack: str | None = None,
    who: Principal = Depends(principal),
) -> list[EventCount]:
    with app_context(request).db.read() as session:
        return queries.event_summary(
            session=session,
            org_id=who.org_id,
            since=since,
            until=until,
            tool=tool,
            project=project,
            stack=stack,
        )


@router.get("/graph/blast-radius/{uid}", response_model=BlastRadius)
def blast_radius(
    request: Request,
    uid: str,
    direction: Direction = Query("downstream", description="downstream: what depends on it"),
    max_depth: int = Query(10, description=f"1-{graph.MAX_DEPTH}"),
    who: Principal = Depends(principal),
) -> BlastRadius:
    stable_uid = queries.parse_uid(uid)
    with app_context(request).db.read() as session:
        return graph.blast_radius(
            session=session, org_id=who.org_id, uid=stable_uid, direction=direction, max_depth=max_depth
        )


@router.get(
    "/graph",
    response_model=Graph,
    responses={200: {"content": {"text/plain": {"description": "dot or mermaid source"}}}},
)
def dependency_graph(
    request: Request,
    stack: list[str] = Query([], description="repeatable; none means every stack"),
    project: str | None = None,
    tool: str | None = None,
    format: Literal["json", "dot", "mermaid"] = "json",
    who: Principal = Depends(principal),
) -> Graph | Response:
    with app_context(request).db.read() as session:
        result = graph.stack_graph(
            session=session, org_id=who.org_id, stacks=stack, project=project, tool=tool
        )
    if format == "dot":
        return Response(graph.to_dot(result), media_type="text/plain")
    if format == "mermaid":
        return Response(graph.to_mermaid(result), media_type="text/plain")
    return result


@router.get("/inventory/errors", response_model=list[InventoryErrorOut])
def inventory_errors(
    request: Request,
    tool: str | None = None,
    project: str | None = None,
    stack: str | None = None,
    limit: int = LIMIT,
    who: Principal = Depends(principal),
) -> list[InventoryErrorOut]:
    with app_context(request).db.read() as session:
        return queries.list_errors(
            session=session, org_id=who.org_id, tool=tool, project=project, stack=stack, limit=limit
        )
