"""The FastAPI application factory.

`prepare(settings)` migrates and bootstraps (run once by `xcf server` before serving);
`create_app(settings)` builds the app for an already prepared database. Nothing happens at import.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING

from fastapi import Depends, FastAPI, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from starlette.concurrency import run_in_threadpool

from xcloudflow import __version__, bounded
from xcloudflow.audit.api import router as audit_router
from xcloudflow.audit.schemas import AuditContext
from xcloudflow.compose.api import agent_router as compose_agent_router
from xcloudflow.compose.api import router as compose_router
from xcloudflow.conflux import api as conflux_api
from xcloudflow.conflux import service as conflux
from xcloudflow.db import Database
from xcloudflow.db import migrate as migrations
from xcloudflow.gitops import api as gitops_api
from xcloudflow.gitops import service as gitops
from xcloudflow.gitops import sync as gitops_sync
from xcloudflow.iam import service as iam
from xcloudflow.iam.api import router as iam_router
from xcloudflow.iam.schemas import Principal
from xcloudflow.inventory import service as inventory
from xcloudflow.inventory.api import router as inventory_router
from xcloudflow.inventory.worker import InventoryWorker
from xcloudflow.jobs import agents as job_agents
from xcloudflow.jobs import service as jobs_service
from xcloudflow.jobs.agent_api import router as agent_api_router
from xcloudflow.jobs.api import router as jobs_router
from xcloudflow.jobs.config import JobSettings
from xcloudflow.jobs.runtime import JobsRuntime
from xcloudflow.keys.keyring import Keyring
from xcloudflow.notify.api import router as notify_router
from xcloudflow.notify.sender import NotificationSender
from xcloudflow.runs import drift as runs_drift
from xcloudflow.runs import service as runs
from xcloudflow.runs.agent_api import router as runs_agent_router
from xcloudflow.runs.api import router as runs_router
from xcloudflow.secrets.api import router as secrets_router
from xcloudflow.server import docs as api_docs
from xcloudflow.server import errors
from xcloudflow.server.deps import AppContext, app_context, principal
from xcloudflow.server.lock_expiry import LockExpiry
from xcloudflow.server.middleware import EdgeMiddleware, RequestContextMiddleware
from xcloudflow.settings import Settings
from xcloudflow.state import service as state
from xcloudflow.state.api import router as stacks_router
from xcloudflow.state.backend_api import router as backend_router
from xcloudflow.workspaces.api import router as workspaces_router
from xcloudflow.workspaces.resources_api import router as workspace_resources_router

if TYPE_CHECKING:
    from xcloudflow.agent.embedded import EmbeddedAgent

log = logging.getLogger("xcloudflow.server")


def prepare(settings: Settings) -> str | None:
    """Migrate to head, make sure the master key exists, bootstrap identity.

    Returns a generated admin token when this start created the admin without XCF_BOOTSTRAP_TOKEN.
    """
    settings.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    settings.data_dir.chmod(0o700)  # the database, the master key: the server's user only
    Keyring.from_settings(settings)
    db = Database(settings.resolved_database_url)
    try:
        migrations.upgrade(db)
        token = settings.bootstrap_token.get_secret_value() if settings.bootstrap_token else None
        with db.write() as session:
            return iam.bootstrap(session=session, token=token)
    finally:
        db.dispose()


def _maintenance(ctx: AppContext) -> None:
    with ctx.db.write() as session:
        inventory.ensure_partitions(session=session)
    with ctx.db.write() as session:
        purged = state.purge_expired(
            session=session,
            ctx=AuditContext(actor="system", org_id=None),
            retention_days=ctx.settings.state_retention_days,
        )
    if purged:
        log.info("purged %d stacks deleted more than %d days ago", purged, ctx.settings.state_retention_days)


async def _maintenance_loop(ctx: AppContext) -> None:
    while True:
        try:
            await run_in_threadpool(_maintenance, ctx)
        except Exception:
            log.exception("maintenance run failed")
        await asyncio.sleep(ctx.settings.maintenance_interval_seconds)


def _runs_tick(ctx: AppContext) -> None:
    """Start due drift checks, dispatch runs an unlock freed, end runs no agent will ever take."""
    with ctx.db.write() as session:
        started = runs_drift.schedule_due(session=session, keyring=ctx.keyring)
    with ctx.db.write() as session:
        runs.dispatch_waiting(session=session)
        expired = runs.expire_unclaimed(
            session=session, timeout_seconds=ctx.settings.run_queue_timeout_seconds
        )
    if started or expired:
        log.info("runs: started %d drift checks; ended %d runs no agent took", started, expired)


async def _runs_loop(ctx: AppContext) -> None:
    while True:
        try:
            await run_in_threadpool(_runs_tick, ctx)
        except Exception:
            log.exception("runs housekeeping failed")
        await asyncio.sleep(ctx.settings.runs_tick_seconds)


def _compose_tick(ctx: AppContext) -> None:
    """Move open ChangeSets on, start due drift checks and TTL collections (see compose/orchestrator)."""
    from xcloudflow.compose import orchestrator

    limits = orchestrator.Limits(
        max_attempts=ctx.settings.compose_max_attempts,
        retry_base_seconds=ctx.settings.compose_retry_base_seconds,
    )
    with ctx.db.write() as session:
        orchestrator.tick(session=session, keyring=ctx.keyring, limits=limits)


async def _compose_loop(ctx: AppContext) -> None:
    while True:
        try:
            await run_in_threadpool(_compose_tick, ctx)
        except Exception:
            log.exception("compose orchestrator tick failed")
        await asyncio.sleep(ctx.settings.compose_tick_seconds)


def _conflux_retention(ctx: AppContext) -> None:
    with ctx.db.write() as session:
        results = conflux.apply_retention(session=session)
    for result in results:
        log.info("conflux retention: deleted versions %s of %s", result.deleted, result.address)


async def _conflux_retention_loop(ctx: AppContext) -> None:
    while True:
        try:
            await run_in_threadpool(_conflux_retention, ctx)
        except Exception:
            log.exception("conflux retention failed")
        await asyncio.sleep(ctx.settings.conflux_retention_interval_seconds)


def _gitops_tick(ctx: AppContext) -> None:
    """Sync the GitOps sources whose interval (or a webhook) made them due."""
    synced = gitops_sync.run_due(db=ctx.db, keyring=ctx.keyring, options=gitops_api.options(ctx))
    if synced:
        log.info("gitops: synced %d due sources", synced)


async def _gitops_loop(ctx: AppContext) -> None:
    while True:
        gitops.WAKE.clear()
        try:
            await run_in_threadpool(_gitops_tick, ctx)
        except Exception:
            log.exception("gitops sync tick failed")
        # Sleep one tick, waking early when a webhook (or a new source) made a source due.
        deadline = asyncio.get_running_loop().time() + ctx.settings.gitops_tick_seconds
        while not gitops.WAKE.is_set() and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.25)


# ---- jobs: the embedded agent (talks to this server over HTTP like any other agent)


def _embedded_agent_url(settings: Settings) -> str:
    host = "127.0.0.1" if settings.host in ("", "0.0.0.0", "::") else settings.host
    return f"http://{'[' + host + ']' if ':' in host else host}:{settings.port}"


def _start_embedded_agent(ctx: AppContext, jobs: JobSettings, url: str) -> tuple[EmbeddedAgent, str]:
    """The embedded agent is a child process with a clean environment (see agent/embedded.py): the
    jobs it runs never share this process's memory, environment or files."""
    from xcloudflow.agent.embedded import EmbeddedAgent

    name = job_agents.embedded_agent_name()
    with ctx.db.write() as session:
        org_id = iam.org_id_by_name(session=session, name=iam.DEFAULT_ORG)
        pool = job_agents.ensure_pool(session=session, org_id=org_id, name=job_agents.EMBEDDED_POOL)
        token = job_agents.mint_pool_token(session=session, pool=pool, name=name, actor="system").token
    settings = ctx.settings
    protected = [settings.data_dir, settings.key_file.parent]
    if settings.resolved_database_url.startswith("sqlite:///"):
        protected.append(Path(settings.resolved_database_url.removeprefix("sqlite:///")).parent)
    agent = EmbeddedAgent(
        server_url=url,
        token=token,
        name=name,
        pool=job_agents.EMBEDDED_POOL,
        concurrency=jobs.embedded_agent_concurrency,
        protected=protected,
        poll_wait=5.0,  # keeps a graceful server shutdown short: uvicorn waits for open requests
    )
    log.info("embedded agent %s (pid %d) pulling jobs from %s", name, agent.pid, url)
    return agent, token


def _stop_embedded_agent(ctx: AppContext, agent: EmbeddedAgent, token: str) -> None:
    agent.stop(grace=15.0)
    with ctx.db.write() as session:
        job_agents.revoke_pool_token_secret(session=session, token=token)


def create_app(
    settings: Settings,
    *,
    maintenance: bool = True,
    inventory_worker: bool | None = None,
    jobs: JobSettings | None = None,
    embedded_agent: bool | None = None,
    agent_url: str | None = None,
    notification_sender: bool | None = None,
) -> FastAPI:
    """The app; `maintenance` and `inventory_worker` (default: same as maintenance) run background work.

    `embedded_agent` (default: `maintenance` and XCF_EMBEDDED_AGENT) runs one agent in-process for the
    default organization's `embedded` pool, reaching this server at `agent_url` (default from
    XCF_HOST/XCF_PORT). `jobs` overrides the job queue settings (default: from XCF_*).
    `notification_sender` (default: `maintenance` and XCF_NOTIFY_SENDER) posts queued notifications.
    """
    bounded.configure(bounded.ContentLimits.of(settings))  # this process's content bounds
    ctx = AppContext(
        settings=settings,
        db=Database(settings.resolved_database_url),
        keyring=Keyring.from_settings(settings, create=False),
    )
    job_settings = jobs or JobSettings()
    jobs_service.on_job_event("terraform.", runs.on_job_event)
    jobs_runtime = JobsRuntime(ctx.db, job_settings)
    run_agent = (maintenance and job_settings.embedded_agent) if embedded_agent is None else embedded_agent

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        task = asyncio.create_task(_maintenance_loop(ctx)) if maintenance else None
        runs_task = asyncio.create_task(_runs_loop(ctx)) if maintenance else None
        compose_task = asyncio.create_task(_compose_loop(ctx)) if maintenance else None
        gitops_task = asyncio.create_task(_gitops_loop(ctx)) if maintenance else None
        conflux_task = asyncio.create_task(_conflux_retention_loop(ctx)) if maintenance else None
        locks_task = asyncio.create_task(LockExpiry(ctx).loop()) if maintenance else None
        worker = None
        if inventory_worker if inventory_worker is not None else maintenance:
            worker = InventoryWorker(
                ctx.db,
                ctx.keyring,
                poll_seconds=settings.inventory_poll_seconds,
                defer_locked_seconds=settings.inventory_defer_locked_seconds,
            )
            worker.start()
        sender = None
        if (maintenance and settings.notify_sender) if notification_sender is None else notification_sender:
            sender = NotificationSender(
                ctx.db,
                ctx.keyring,
                poll_seconds=settings.notify_poll_seconds,
                timeout_seconds=settings.notify_timeout_seconds,
                max_attempts=settings.notify_max_attempts,
                retry_base_seconds=settings.notify_retry_base_seconds,
            )
            sender.start()
        jobs_runtime.start()
        agent = None
        if run_agent:
            agent = await run_in_threadpool(
                _start_embedded_agent, ctx, job_settings, agent_url or _embedded_agent_url(settings)
            )
        try:
            yield
        finally:
            if agent is not None:
                await run_in_threadpool(_stop_embedded_agent, ctx, *agent)
            jobs_runtime.close()
            if worker is not None:
                worker.stop.set()
            if sender is not None:
                await run_in_threadpool(sender.stop)
            conflux_api.close_hub(_app)
            for background in (task, runs_task, compose_task, conflux_task, locks_task):
                if background is not None:
                    background.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await background
            if gitops_task is not None:
                gitops_task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await gitops_task
            ctx.db.dispose()

    app = FastAPI(
        title="XCloudFlow",
        version=__version__,
        description="Self-hosted infrastructure control plane: Terraform/Pulumi state service.",
        docs_url=None,  # server/docs.py serves /api/docs without a CDN
        openapi_url="/api/openapi.json",
        redoc_url=None,
        lifespan=lifespan,
    )
    app.state.ctx = ctx
    app.state.jobs = jobs_runtime
    errors.install(app)
    api_docs.install(app)
    app.add_middleware(EdgeMiddleware, settings=settings)  # inner: its answers carry the request id
    app.add_middleware(RequestContextMiddleware)

    @app.get("/healthz", tags=["health"], summary="The process is up")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", tags=["health"], summary="The database is reachable and migrated to head")
    def readyz(request: Request) -> JSONResponse:
        db = app_context(request).db
        try:
            db.ping()
            current, head = migrations.current_revision(db), migrations.head_revision()
        except Exception as exc:
            log.warning("readiness check failed: %s", exc)
            return JSONResponse(errors.error_body("not_ready", "database unreachable"), status_code=503)
        if current != head:
            return JSONResponse(
                errors.error_body("not_ready", f"database at migration {current}, expected {head}"),
                status_code=503,
            )
        return JSONResponse({"status": "ready", "migration": current})

    @app.get("/metrics", tags=["health"], summary="Prometheus metrics (any valid token)")
    def metrics(request: Request, _who: Principal = Depends(principal)) -> Response:
        if "PROMETHEUS_MULTIPROC_DIR" in os.environ:
            from prometheus_client import multiprocess

            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
            return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    app.include_router(iam_router)
    app.include_router(audit_router)
    app.include_router(stacks_router)
    app.include_router(inventory_router)
    app.include_router(backend_router)
    app.include_router(jobs_router)
    app.include_router(agent_api_router)
    app.include_router(runs_router)
    app.include_router(runs_agent_router)
    app.include_router(compose_router)
    app.include_router(compose_agent_router)
    app.include_router(conflux_api.router)
    app.include_router(notify_router)
    app.include_router(secrets_router)
    app.include_router(gitops_api.router)
    app.include_router(workspaces_router)
    app.include_router(workspace_resources_router)
    return app


def app_from_env() -> FastAPI:
    """Factory for uvicorn workers (`--workers N`): settings come from the environment."""
    return create_app(Settings())
