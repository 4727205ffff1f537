"""GitOps under /api/v1/gitops (thin: parse, authorize, call). A manual sync and a preview run in the
request (the git fetch happens outside any transaction); the webhook only makes the source due and
returns at once, the server's sync loop does the work."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Header, Query, Request, Response
from starlette.concurrency import run_in_threadpool

from xcloudflow.gitops import preview as previews
from xcloudflow.gitops import service, sync
from xcloudflow.gitops.schemas import (
    EventOut,
    PreviewOut,
    SourceCreate,
    SourceCreated,
    SourceOut,
    SourceUpdate,
    WebhookOut,
)
from xcloudflow.iam import service as iam
from xcloudflow.iam.schemas import Principal
from xcloudflow.server.deps import AppContext, app_context, audit_context, principal

router = APIRouter(prefix="/api/v1/gitops", tags=["gitops"])


def options(ctx: AppContext) -> sync.SyncOptions:
    return sync.SyncOptions(
        local_roots=ctx.settings.gitops_roots,
        git_timeout=ctx.settings.gitops_git_timeout_seconds,
        repo_max_bytes=ctx.settings.gitops_repo_max_bytes,
    )


@router.post("/sources", response_model=SourceCreated, status_code=201)
def create_source(request: Request, body: SourceCreate, who: Principal = Depends(principal)) -> SourceCreated:
    """Register a ConfluxSource (writers): the flat body or the seed's `kind: ConfluxSource` document.
    The URL is checked here (422 with the reason: https, ssh, user@host:path, file:// or a path under
    XCF_GITOPS_LOCAL_ROOTS). The answer carries the webhook secret, shown only here."""
    ctx = app_context(request)
    with ctx.db.write() as session:
        return service.create_source(
            session=session,
            keyring=ctx.keyring,
            principal=who,
            ctx=audit_context(request, who),
            body=body,
            local_roots=options(ctx).local_roots.of(who.org_name),
        )


@router.get("/sources", response_model=list[SourceOut])
def list_sources(request: Request, who: Principal = Depends(principal)) -> list[SourceOut]:
    with app_context(request).db.read() as session:
        return service.list_sources(session=session, principal=who)


@router.get("/sources/{name}", response_model=SourceOut)
def show_source(request: Request, name: str, who: Principal = Depends(principal)) -> SourceOut:
    """The source and its status: fetched and synced commits, the Ready condition, per-document results."""
    with app_context(request).db.read() as session:
        return service.show_source(session=session, principal=who, name=name)


@router.patch("/sources/{name}", response_model=SourceOut)
def update_source(
    request: Request, name: str, body: SourceUpdate, who: Principal = Depends(principal)
) -> SourceOut:
    """Turn `prune` or `suspend` on or off (writers); only the fields given change."""
    with app_context(request).db.write() as session:
        return service.update_source(
            session=session, principal=who, ctx=audit_context(request, who), name=name, body=body
        )


@router.delete("/sources/{name}", status_code=204)
def delete_source(request: Request, name: str, who: Principal = Depends(principal)) -> Response:
    """Forget a source (writers); configs it published stay in Conflux."""
    with app_context(request).db.write() as session:
        service.delete_source(session=session, principal=who, ctx=audit_context(request, who), name=name)
    return Response(status_code=204)


@router.get("/sources/{name}/events", response_model=list[EventOut])
def list_events(
    request: Request, name: str, limit: int = Query(100), who: Principal = Depends(principal)
) -> list[EventOut]:
    """What happened, newest first, like `kubectl get events`."""
    with app_context(request).db.read() as session:
        return service.list_events(session=session, principal=who, name=name, limit=limit)


@router.post("/sources/{name}/sync", response_model=SourceOut)
async def sync_source(
    request: Request,
    name: str,
    force: bool = Query(True, description="publish even when the commit was synced already (idempotent)"),
    who: Principal = Depends(principal),
) -> SourceOut:
    """Sync now (writers) and answer the resulting status."""
    iam.require(who, "writer", action="syncing GitOps sources")
    ctx = app_context(request)
    with ctx.db.read() as session:
        service.show_source(session=session, principal=who, name=name)  # 404 before any fetch
    return await run_in_threadpool(
        lambda: sync.sync_source(
            db=ctx.db,
            keyring=ctx.keyring,
            options=options(ctx),
            org_id=who.org_id,
            name=name,
            force=force,
            trigger=f"manual by {who.user_name}",
            request_id=audit_context(request, who).request_id,
        )
    )


@router.get("/sources/{name}/diff", response_model=PreviewOut)
async def preview_source(
    request: Request,
    name: str,
    ref: str | None = Query(None, description="branch, tag or commit to preview (default: the source's ref)"),
    who: Principal = Depends(principal),
) -> PreviewOut:
    """Dry run: what a sync of `ref` would publish, with content diffs (secrets masked) and Markdown
    for a pull-request comment. Publishes nothing."""
    ctx = app_context(request)
    with ctx.db.read() as session:
        service.show_source(session=session, principal=who, name=name)
    return await run_in_threadpool(
        lambda: previews.preview(
            db=ctx.db, keyring=ctx.keyring, options=options(ctx), org_id=who.org_id, name=name, ref=ref
        )
    )


@router.post("/webhook/{name}", response_model=WebhookOut, status_code=202)
async def webhook(
    request: Request,
    name: str,
    response: Response,
    x_hub_signature_256: str | None = Header(None),
    x_github_event: str | None = Header(None),
) -> WebhookOut:
    """Push webhook (GitHub's format): `X-Hub-Signature-256: sha256=<HMAC-SHA256 of the body with the
    source's webhook secret>`; no token. 202 when a sync was requested, 200 when the push was ignored."""
    body = await request.body()
    ctx = app_context(request)

    def receive() -> tuple[bool, str]:
        with ctx.db.write() as session:
            return service.receive_webhook(
                session=session,
                keyring=ctx.keyring,
                name=name,
                body=body,
                signature=x_hub_signature_256,
                event=x_github_event,
                client_ip=request.client.host if request.client else None,
                request_id=getattr(request.state, "request_id", None),
            )

    accepted, message = await run_in_threadpool(receive)
    if not accepted or message == "pong":
        response.status_code = 200
    return WebhookOut(accepted=accepted, message=message)
