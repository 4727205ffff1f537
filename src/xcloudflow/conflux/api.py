"""The config center under /api/v1/conflux: configs, publish, versions, releases, policy, history,
resolve (with ETag) and the long-poll watch. Readers may read, resolve and watch; writers the rest.

Thin: parse, authorize (the principal; roles are checked by the service), call the service, shape
the answer. The watch route is async so that hundreds of waiting watchers hold no thread.
"""

from __future__ import annotations

import asyncio
import threading
import uuid

from fastapi import APIRouter, Depends, FastAPI, Header, Query, Request, Response
from starlette.concurrency import run_in_threadpool

from xcloudflow.conflux import resolve as resolving
from xcloudflow.conflux import rules, service
from xcloudflow.conflux.schemas import (
    ConfigOut,
    ConfigPage,
    ConfigPut,
    DiffOut,
    HistoryOut,
    NotificationOut,
    PolicyIn,
    PolicyOut,
    PublishIn,
    PublishOut,
    ReleaseIn,
    ReleaseOut,
    ResolveOut,
    VersionOut,
    VersionPage,
    WatchOut,
)
from xcloudflow.conflux.service import ConfigAddress, check_part
from xcloudflow.conflux.watch import Scope, Waiter, WatchHub
from xcloudflow.db import Database
from xcloudflow.iam.schemas import Principal
from xcloudflow.server.deps import AppContext, app_context, audit_context, cached_principal, principal
from xcloudflow.server.params import INT32_MAX, INT64_MAX, Number

router = APIRouter(prefix="/api/v1/conflux", tags=["conflux"])
CONFIG = "/configs/{tenant}/{application}/{environment}/{name}"
MAX_WATCH_SECONDS = 60.0
_HUB_LOCK = threading.Lock()


def _address(tenant: str, application: str, environment: str, name: str) -> ConfigAddress:
    return ConfigAddress(tenant, application, environment, name)


@router.put(CONFIG, response_model=ConfigOut, responses={201: {"model": ConfigOut}})
def put_config(
    request: Request,
    response: Response,
    tenant: str,
    application: str,
    environment: str,
    name: str,
    body: ConfigPut,
    who: Principal = Depends(principal),
) -> ConfigOut:
    """Create a config (201) or replace its settings (200). Its format cannot change once it has versions."""
    address = _address(tenant, application, environment, name)
    with app_context(request).db.write() as session:
        out, created = service.put_config(
            session=session, principal=who, ctx=audit_context(request, who), address=address, body=body
        )
    response.status_code = 201 if created else 200
    return out


@router.get("/configs", response_model=ConfigPage)
def list_configs(
    request: Request,
    tenant: str | None = None,
    application: str | None = None,
    environment: str | None = None,
    cursor: str | None = None,
    limit: int = Query(100, ge=1, le=500),
    who: Principal = Depends(principal),
) -> ConfigPage:
    with app_context(request).db.read() as session:
        return service.list_configs(
            session=session,
            org_id=who.org_id,
            tenant=tenant,
            application=application,
            environment=environment,
            cursor=cursor,
            limit=limit,
        )


@router.get("/configs/by-id/{config_id}", response_model=ConfigOut)
def get_config_by_id(
    request: Request, config_id: uuid.UUID, who: Principal = Depends(principal)
) -> ConfigOut:
    with app_context(request).db.read() as session:
        return service.get_config_by_id(session=session, org_id=who.org_id, config_id=config_id)


@router.get(CONFIG, response_model=ConfigOut)
def get_config(
    request: Request,
    tenant: str,
    application: str,
    environment: str,
    name: str,
    who: Principal = Depends(principal),
) -> ConfigOut:
    address = _address(tenant, application, environment, name)
    with app_context(request).db.read() as session:
        return service.get_config(session=session, org_id=who.org_id, address=address)


@router.delete(CONFIG, status_code=204)
def delete_config(
    request: Request,
    tenant: str,
    application: str,
    environment: str,
    name: str,
    who: Principal = Depends(principal),
) -> Response:
    """Delete a config with its versions, releases and policy."""
    address = _address(tenant, application, environment, name)
    with app_context(request).db.write() as session:
        service.delete_config(
            session=session, principal=who, ctx=audit_context(request, who), address=address
        )
    return Response(status_code=204)


@router.post(
    CONFIG + "/publish", response_model=PublishOut, status_code=201, responses={200: {"model": PublishOut}}
)
def publish(
    request: Request,
    response: Response,
    tenant: str,
    application: str,
    environment: str,
    name: str,
    body: PublishIn,
    who: Principal = Depends(principal),
) -> PublishOut:
    """One transaction: a new version (validated against the format and schema: 422 otherwise), made
    stable and/or with a new policy when asked. A retry with the same idempotency key and the same request
    answers 200 with the first result (`replayed: true`); the same key with another request is 409;
    `expected_version` other than the latest version number is 409."""
    ctx = app_context(request)
    address = _address(tenant, application, environment, name)
    with ctx.db.write() as session:
        out = service.publish(
            session=session,
            keyring=ctx.keyring,
            principal=who,
            ctx=audit_context(request, who),
            address=address,
            body=body,
        )
    if out.replayed:
        response.status_code = 200
    return out


@router.get(CONFIG + "/versions", response_model=VersionPage)
def list_versions(
    request: Request,
    tenant: str,
    application: str,
    environment: str,
    name: str,
    cursor: str | None = None,
    limit: int = Query(100, ge=1, le=500),
    who: Principal = Depends(principal),
) -> VersionPage:
    """Versions newest first, without content; `stable` and `rules` say which are effective."""
    address = _address(tenant, application, environment, name)
    with app_context(request).db.read() as session:
        return service.list_versions(
            session=session, org_id=who.org_id, address=address, cursor=cursor, limit=limit
        )


@router.get(CONFIG + "/versions/{number}", response_model=VersionOut)
def show_version(
    request: Request,
    tenant: str,
    application: str,
    environment: str,
    name: str,
    number: Number,
    who: Principal = Depends(principal),
) -> VersionOut:
    ctx = app_context(request)
    address = _address(tenant, application, environment, name)
    with ctx.db.read() as session:
        return service.show_version(
            session=session, keyring=ctx.keyring, org_id=who.org_id, address=address, number=number
        )


@router.get(CONFIG + "/diff", response_model=DiffOut)
def diff(
    request: Request,
    tenant: str,
    application: str,
    environment: str,
    name: str,
    from_version: int = Query(alias="from", ge=1, le=INT32_MAX),
    to_version: int = Query(alias="to", ge=1, le=INT32_MAX),
    who: Principal = Depends(principal),
) -> DiffOut:
    """The unified diff between two versions."""
    ctx = app_context(request)
    address = _address(tenant, application, environment, name)
    with ctx.db.read() as session:
        return service.diff(
            session=session,
            keyring=ctx.keyring,
            org_id=who.org_id,
            address=address,
            from_version=from_version,
            to_version=to_version,
        )


@router.post(
    CONFIG + "/releases", response_model=ReleaseOut, status_code=201, responses={200: {"model": ReleaseOut}}
)
def create_release(
    request: Request,
    response: Response,
    tenant: str,
    application: str,
    environment: str,
    name: str,
    body: ReleaseIn,
    who: Principal = Depends(principal),
) -> ReleaseOut:
    """Make a version stable (rollback: an earlier one). 200 with the current release when it is already."""
    address = _address(tenant, application, environment, name)
    with app_context(request).db.write() as session:
        out, created = service.release(
            session=session, principal=who, ctx=audit_context(request, who), address=address, body=body
        )
    response.status_code = 201 if created else 200
    return out


@router.get(CONFIG + "/releases", response_model=list[ReleaseOut])
def list_releases(
    request: Request,
    tenant: str,
    application: str,
    environment: str,
    name: str,
    limit: int = Query(100, ge=1, le=500),
    who: Principal = Depends(principal),
) -> list[ReleaseOut]:
    address = _address(tenant, application, environment, name)
    with app_context(request).db.read() as session:
        return service.list_releases(session=session, org_id=who.org_id, address=address, limit=limit)


@router.put(CONFIG + "/policy", response_model=PolicyOut)
def put_policy(
    request: Request,
    tenant: str,
    application: str,
    environment: str,
    name: str,
    body: PolicyIn,
    who: Principal = Depends(principal),
) -> PolicyOut:
    """Replace every rule of the release policy (a rule naming a missing version: 422)."""
    address = _address(tenant, application, environment, name)
    with app_context(request).db.write() as session:
        return service.put_policy(
            session=session, principal=who, ctx=audit_context(request, who), address=address, body=body
        )


@router.get(CONFIG + "/policy", response_model=PolicyOut)
def get_policy(
    request: Request,
    tenant: str,
    application: str,
    environment: str,
    name: str,
    who: Principal = Depends(principal),
) -> PolicyOut:
    address = _address(tenant, application, environment, name)
    with app_context(request).db.read() as session:
        return service.get_policy(session=session, org_id=who.org_id, address=address)


@router.get(CONFIG + "/history", response_model=HistoryOut)
def history(
    request: Request,
    tenant: str,
    application: str,
    environment: str,
    name: str,
    limit: int = Query(50, ge=1, le=500),
    who: Principal = Depends(principal),
) -> HistoryOut:
    """What is effective now (stable + rules) next to what was published, and every stable change."""
    address = _address(tenant, application, environment, name)
    with app_context(request).db.read() as session:
        return service.history(session=session, org_id=who.org_id, address=address, limit=limit)


@router.get(CONFIG + "/resolve", response_model=ResolveOut, responses={304: {"description": "not modified"}})
async def resolve(
    request: Request,
    tenant: str,
    application: str,
    environment: str,
    name: str,
    labels: str = Query("", description="k=v,k2=v2"),
    client_id: str | None = Query(None, max_length=256),
    if_none_match: str | None = Header(default=None),
    who: Principal = Depends(cached_principal),
) -> ResolveOut | Response:
    """The content and version a client with these labels gets now; ETag is the version id.

    The hot path: the token's principal is cached briefly (see `cached_principal`), the database work
    is one read transaction in one worker-thread hop, skipped altogether while what the config resolves
    from is remembered (`XCF_CONFLUX_RESOLVE_CACHE_SECONDS`)."""
    ctx = app_context(request)
    address = _address(tenant, application, environment, name)
    wanted = rules.parse_labels(labels)

    remember = ctx.settings.conflux_resolve_cache_seconds

    def read() -> ResolveOut:
        with ctx.db.read() as session:
            return resolving.resolve(
                session=session,
                keyring=ctx.keyring,
                org_id=who.org_id,
                address=address,
                labels=wanted,
                client_id=client_id,
                remember_seconds=remember,
            )

    hit = None
    if remember > 0:
        hit = resolving.cached(org_id=who.org_id, address=address, labels=wanted, client_id=client_id)
    if hit is None:
        out = await run_in_threadpool(read)
        hit = (str(out.version_id), out.model_dump_json().encode())
    version_id, body = hit
    etag = f'"{version_id}"'
    if if_none_match is not None and etag in [t.strip() for t in if_none_match.split(",")]:
        return Response(status_code=304, headers={"ETag": etag})
    return Response(body, media_type="application/json", headers={"ETag": etag, "Cache-Control": "no-cache"})


# ---------------------------------------------------------------- watch


def _fetch(db: Database, scope: Scope, since: int, limit: int) -> list[NotificationOut]:
    with db.read() as session:
        return service.notifications_since(session=session, scope=scope, since=since, limit=limit)


def _last_id(db: Database, scope: Scope) -> int:
    with db.read() as session:
        return service.last_notification_id(session=session, scope=scope)


def hub_for(app: FastAPI, ctx: AppContext) -> WatchHub:
    """The app's watch hub, made on first use (closed by the server on shutdown: `close_hub`)."""
    hub: WatchHub | None = getattr(app.state, "conflux_hub", None)
    if hub is None:
        with _HUB_LOCK:
            hub = getattr(app.state, "conflux_hub", None)
            if hub is None:
                poll = ctx.settings.conflux_watch_poll_seconds
                hub = WatchHub(ctx.db, fetch=_fetch, last_id=_last_id, poll_seconds=poll)
                app.state.conflux_hub = hub
    return hub


def close_hub(app: FastAPI) -> None:
    hub: WatchHub | None = getattr(app.state, "conflux_hub", None)
    if hub is not None:
        hub.close()


def _since(ctx: AppContext, scope: Scope, since: int, names: frozenset[str] | None) -> list[NotificationOut]:
    with ctx.db.read() as session:
        return service.notifications_since(session=session, scope=scope, since=since, names=names, limit=500)


@router.get("/watch", response_model=WatchOut, responses={304: {"description": "nothing changed in time"}})
async def watch(
    request: Request,
    tenant: str,
    application: str,
    environment: str,
    names: str | None = Query(None, description="config names, comma-separated (default: all)"),
    since: int | None = Query(None, ge=0, le=INT64_MAX, description="the last notification id seen"),
    timeout: float = Query(MAX_WATCH_SECONDS, gt=0, le=MAX_WATCH_SECONDS),
    who: Principal = Depends(cached_principal),
) -> WatchOut | Response:
    """Long poll: answers as soon as a notification with id > `since` concerns the environment (and
    `names`), or 304 after `timeout` seconds. Without `since`: at once, with the current `last_id`."""
    ctx = app_context(request)
    for field_name, value in (("tenant", tenant), ("application", application), ("environment", environment)):
        check_part(field_name, value)
    wanted = frozenset(n.strip() for n in names.split(",") if n.strip()) if names else None
    for config_name in wanted or ():
        check_part("name", config_name)
    scope: Scope = (who.org_id, tenant, application, environment)
    if since is None:
        return WatchOut(notifications=[], last_id=await run_in_threadpool(_last_id, ctx.db, scope))
    limit = ctx.settings.conflux_watch_timeout_seconds
    wait = min(timeout, limit, MAX_WATCH_SECONDS)
    hub = hub_for(request.app, ctx)
    waiter = Waiter(scope=scope, names=wanted, since=since, loop=asyncio.get_running_loop())
    await run_in_threadpool(hub.subscribe, waiter)
    try:
        found = await run_in_threadpool(_since, ctx, scope, since, wanted)
        if not found:
            try:
                await asyncio.wait_for(waiter.event.wait(), wait)
            except TimeoutError:
                return Response(status_code=304)
            found = waiter.found
        if not found:
            return Response(status_code=304)
        return WatchOut(notifications=found, last_id=found[-1].id)
    finally:
        hub.unsubscribe(waiter)
