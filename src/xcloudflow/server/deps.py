"""Request dependencies: the application context and the authenticated principal.

Tokens come as `Authorization: Bearer <token>` (API) or HTTP basic auth with the token as password and
any username (Terraform's http backend, GitLab's convention). Both are accepted on every route.
"""

from __future__ import annotations

import base64
import binascii
import time
from dataclasses import dataclass

from fastapi import Request
from starlette.concurrency import run_in_threadpool

from xcloudflow.audit.schemas import AuditContext
from xcloudflow.db import Database
from xcloudflow.errors import Forbidden, Unauthorized
from xcloudflow.iam import service as iam
from xcloudflow.iam.schemas import Principal
from xcloudflow.jobs import service as jobs
from xcloudflow.jobs.agents import JOB_TOKEN_PREFIX
from xcloudflow.keys.keyring import Keyring
from xcloudflow.settings import Settings


@dataclass
class AppContext:
    settings: Settings
    db: Database
    keyring: Keyring


def app_context(request: Request) -> AppContext:
    ctx: AppContext = request.app.state.ctx
    return ctx


def _token_from(request: Request) -> str:
    return token_from_header(request.headers.get("authorization"))


def token_from_header(header: str | None) -> str:
    """The token of an Authorization header (Bearer, or basic auth's password); Unauthorized if none."""
    if not header:
        raise Unauthorized(
            "authentication required: send an API token as a Bearer token or as the basic-auth password"
        )
    scheme, _, value = header.partition(" ")
    scheme = scheme.lower()
    if scheme == "bearer" and value.strip():
        return value.strip()
    if scheme == "basic":
        try:
            decoded = base64.b64decode(value.strip(), validate=True).decode()
        except (binascii.Error, UnicodeDecodeError) as exc:
            raise Unauthorized("malformed basic auth header") from exc
        _, _, password = decoded.partition(":")
        if password:
            return password
        raise Unauthorized("basic auth needs the API token as the password")
    raise Unauthorized("unsupported Authorization scheme: use Bearer or Basic")


def _job_principal(request: Request, token: str) -> Principal:
    """A job token (handed to Terraform on the agent) reaches only its job's stack, by the backend routes."""
    with app_context(request).db.read() as session:
        job = jobs.job_by_token(session=session, token=token)
        if job is None:
            raise Unauthorized("the job token is not valid (unknown, or its job has finished)")
        scope = job.payload.get("state") if isinstance(job.payload, dict) else None
        if not isinstance(scope, dict):
            raise Forbidden(f"job {job.id} reaches no state")
        scoped = (str(scope.get("project")), str(scope.get("stack")))
        who = Principal(
            user_id=0,
            user_name=f"job:{job.id}",
            org_id=job.org_id,
            org_name="",
            role="writer",
            token_id=0,
            stack_scope=scoped,
        )
    params = request.path_params
    path = request.url.path
    # What Terraform's http backend does: read, write, lock and unlock. Never delete the stack.
    if request.method not in ("GET", "POST", "LOCK", "UNLOCK") and not (
        request.method == "DELETE" and path.endswith("/lock")
    ):
        raise Forbidden(f"a job token cannot {request.method} state")
    on_backend = (
        request.url.path.startswith("/terraform/state/")
        or request.url.path.startswith("/terraform/lock/")
        or request.url.path.startswith("/terraform/unlock/")
    )
    if not on_backend or (params.get("project"), params.get("stack")) != scoped:
        raise Forbidden(
            f"a job token only reaches the Terraform state of its workspace "
            f"({scoped[0]}/{scoped[1]}) through /terraform/state/..."
        )
    return who


def principal(request: Request) -> Principal:
    ctx = app_context(request)
    token = _token_from(request)
    if token.startswith(JOB_TOKEN_PREFIX):
        who = _job_principal(request, token)
    else:
        with ctx.db.read() as session:
            who = iam.authenticate(session=session, token=token)
    request.state.principal = who
    return who


_AUTH_CACHE_MAX = 10_000


async def cached_principal(request: Request) -> Principal:
    """`principal` for the hot read routes clients poll (config resolve and watch): a token's principal
    is remembered for `XCF_AUTH_CACHE_SECONDS` (default 5; 0 turns it off), per server process. So a
    revoked or expired token keeps working on these routes only for up to that long; every other
    route checks the database each time. Job tokens are never cached."""
    ctx = app_context(request)
    ttl = ctx.settings.auth_cache_seconds
    token = _token_from(request)
    if ttl <= 0 or token.startswith(JOB_TOKEN_PREFIX):
        return await run_in_threadpool(principal, request)
    cache: dict[str, tuple[float, Principal]] | None = getattr(request.app.state, "auth_cache", None)
    if cache is None:
        cache = request.app.state.auth_cache = {}
    key = iam.hash_token(token)
    now = time.monotonic()
    hit = cache.get(key)
    if hit is not None and hit[0] > now:
        request.state.principal = hit[1]
        return hit[1]
    who = await run_in_threadpool(principal, request)
    if len(cache) >= _AUTH_CACHE_MAX:
        cache.clear()  # crude but bounded; refilled by the next requests
    cache[key] = (now + ttl, who)
    return who


def audit_context(request: Request, who: Principal) -> AuditContext:
    return AuditContext(
        actor=who.user_name,
        org_id=who.org_id,
        request_id=getattr(request.state, "request_id", None),
        client_ip=request.client.host if request.client else None,
    )
