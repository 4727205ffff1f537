"""Pure ASGI middleware: a request id on every request and answer, request metrics, and the HTTP edge
(rate limits, authentication before any body is read, body caps, values no database can hold).

Pure ASGI (not BaseHTTPMiddleware) so that streamed request and response bodies pass through
untouched.
"""

from __future__ import annotations

import hashlib
import logging
import re
import time
import uuid
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from xcloudflow.audit import service as audit
from xcloudflow.audit.schemas import AuditContext
from xcloudflow.errors import Unauthorized
from xcloudflow.iam import service as iam
from xcloudflow.jobs import agents
from xcloudflow.metrics import HTTP_LATENCY, HTTP_REQUESTS
from xcloudflow.server import errors
from xcloudflow.server.deps import AppContext, token_from_header
from xcloudflow.server.errors import problem_response
from xcloudflow.server.limits import (
    BodyTooLarge,
    CountingReceive,
    body_cap,
    declared_length,
    has_body,
    is_webhook,
    json_problem,
    read_all,
    target_problem,
)
from xcloudflow.server.ratelimit import FailureTally, TokenBuckets, retry_after
from xcloudflow.settings import Settings

log = logging.getLogger("xcloudflow.server")

_AGENT_TOKEN_PREFIXES = (agents.AGENT_TOKEN_PREFIX, agents.JOB_TOKEN_PREFIX)
_RID_OK = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


class RequestContextMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming = dict(scope.get("headers") or []).get(b"x-request-id", b"").decode("latin-1")
        rid = incoming if _RID_OK.match(incoming) else uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = rid
        started = time.perf_counter()
        status = 500

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = list(message.get("headers") or [])
                if not any(k.lower() == b"x-request-id" for k, _ in headers):
                    headers.append((b"x-request-id", rid.encode()))
                message["headers"] = headers
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            route: Any = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            method = scope.get("method", "")
            HTTP_REQUESTS.labels(method, template, str(status)).inc()
            HTTP_LATENCY.labels(method, template).observe(time.perf_counter() - started)


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers") or ():
        if key == name:
            return str(value.decode("latin-1"))
    return None


def _is_json(scope: Scope) -> bool:
    kind = (_header(scope, b"content-type") or "application/json").split(";")[0].strip().lower()
    return kind == "application/json" or kind.endswith("+json")


class EdgeMiddleware:
    """The HTTP edge, in front of every route (see docs/security.md, "HTTP edge"):

    1. an address blocked for bad credentials, or over its rate limit, or a token over its rate
       limit: 429 with Retry-After;
    2. NUL bytes in the path or a query parameter: 422 naming it;
    3. a request with a body: its credentials are checked first (a token of any kind, or the GitOps
       webhook's signature header), then its size: the Content-Length up front and the bytes while
       they stream in, against the route's cap (413); a JSON body the app parses whole is checked for
       NUL characters and lone surrogates (422 naming the field);
    4. every answer 401 to a request that carried credentials counts toward the address's block.
    """

    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.settings = settings
        self.tokens = TokenBuckets(settings.rate_limit_token_per_second, settings.rate_limit_token_burst)
        self.addresses = TokenBuckets(
            settings.rate_limit_address_per_second, settings.rate_limit_address_burst
        )
        self.failures = FailureTally(
            settings.auth_failure_limit, settings.auth_failure_window_seconds, settings.auth_block_seconds
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        client = scope.get("client")
        address = str(client[0]) if client else "unknown"
        authorization = _header(scope, b"authorization")
        refusal = self._throttled(address, authorization)
        if refusal is None:
            problem = target_problem(scope)
            if problem is not None:
                refusal = problem_response(Request(scope), problem.field, problem.message)
        if refusal is None and has_body(scope):
            refusal = await self._unauthenticated(scope, authorization)
            if refusal is None:
                refusal, receive = await self._bounded(scope, receive)
        if refusal is not None:
            await self._answer(refusal, scope, receive, send, address, authorization)
            return
        await self._forward(scope, receive, send, address, authorization)

    def _throttled(self, address: str, authorization: str | None) -> JSONResponse | None:
        blocked = self.failures.blocked_for(address)
        if blocked:
            return self._too_many(
                f"too many requests with bad credentials from {address}; blocked for {retry_after(blocked)} s",
                blocked,
            )
        # Per address for requests without credentials (GitLab's "unauthenticated per IP"); requests
        # with credentials are limited per token (bad ones by the failure tally above), so a reverse
        # proxy or the agents on the server's own host do not share one budget.
        wait = 0.0 if authorization else self.addresses.take(address)
        if wait:
            rate = self.settings.rate_limit_address_per_second
            return self._too_many(
                f"rate limit of {rate:g} requests/s per client address reached "
                "(XCF_RATE_LIMIT_ADDRESS_PER_SECOND)",
                wait,
            )
        if authorization:
            try:  # the token itself: basic auth with any user name is the same token
                token = token_from_header(authorization)
            except Unauthorized:
                token = authorization
            if token.startswith(_AGENT_TOKEN_PREFIXES):
                return None  # agents' and jobs' own protocol: its volume follows the jobs themselves
            wait = self.tokens.take(hashlib.blake2b(token.encode(), digest_size=16).hexdigest())
            if wait:
                rate = self.settings.rate_limit_token_per_second
                return self._too_many(
                    f"rate limit of {rate:g} requests/s per token reached (XCF_RATE_LIMIT_TOKEN_PER_SECOND)",
                    wait,
                )
        return None

    @staticmethod
    def _too_many(message: str, wait: float) -> JSONResponse:
        return JSONResponse(
            errors.error_body("too_many_requests", message),
            status_code=429,
            headers={"Retry-After": retry_after(wait)},
        )

    async def _unauthenticated(self, scope: Scope, authorization: str | None) -> JSONResponse | None:
        """401 unless the request carries credentials that are valid for something; None when it does."""
        if is_webhook(scope["path"]):
            if _header(scope, b"x-hub-signature-256"):
                return None  # the route checks the HMAC over the (capped) body
            message = "a webhook needs the X-Hub-Signature-256 header (HMAC-SHA256 of the body)"
            return errors.edge_response(Request(scope), 401, message)
        try:
            token = token_from_header(authorization)
        except Unauthorized as exc:
            return errors.edge_response(Request(scope), 401, exc.message)
        ctx: AppContext = scope["app"].state.ctx

        def refusal() -> str | None:
            # One lookup on the common path: agent and job tokens carry their prefix, so an API
            # token (Terraform's, the CLI's) is looked up as one directly, not after three misses.
            with ctx.db.read() as session:
                if (
                    token.startswith(_AGENT_TOKEN_PREFIXES)
                    and agents.token_kind(session=session, token=token) is not None
                ):
                    return None
                try:  # say why an API token is refused (revoked, expired, user disabled)
                    iam.authenticate(session=session, token=token)
                except Unauthorized as exc:
                    return exc.message
                return None

        refused: str | None = await run_in_threadpool(refusal)
        return None if refused is None else errors.edge_response(Request(scope), 401, refused)

    async def _bounded(self, scope: Scope, receive: Receive) -> tuple[JSONResponse | None, Receive]:
        """The request's body limited to its route's cap; JSON the app parses whole checked first."""
        cap = body_cap(scope, self.settings)
        try:
            declared = declared_length(scope)
        except ValueError:
            return errors.edge_response(Request(scope), 400, "Content-Length is not a number"), receive
        if declared is not None and declared > cap.limit:
            return errors.edge_response(Request(scope), 413, BodyTooLarge(cap).detail), receive
        counting = CountingReceive(receive, cap)
        if not (cap.parsed and _is_json(scope)):
            return None, counting
        try:
            body, replay = await read_all(counting)
        except BodyTooLarge as exc:
            return errors.edge_response(Request(scope), 413, exc.detail), receive
        problem = json_problem(body)
        if problem is not None:
            return problem_response(Request(scope), problem.field, problem.message), receive

        async def replayed() -> Message:
            return replay.pop(0) if replay else await receive()

        return None, replayed

    async def _answer(
        self,
        response: JSONResponse,
        scope: Scope,
        receive: Receive,
        send: Send,
        address: str,
        authorization: str | None,
    ) -> None:
        if response.status_code == 401 and authorization:
            await self._failed(scope, address)
        await response(scope, receive, send)

    async def _forward(
        self, scope: Scope, receive: Receive, send: Send, address: str, authorization: str | None
    ) -> None:
        status = 0

        async def watch(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, watch)
        except BodyTooLarge as exc:  # raised past the handlers (e.g. in a middleware): still a 413
            if status:
                raise
            await errors.edge_response(Request(scope), 413, exc.detail)(scope, receive, send)
            return
        if status == 401 and (authorization or _header(scope, b"x-hub-signature-256")):
            await self._failed(scope, address)

    async def _failed(self, scope: Scope, address: str) -> None:
        if not self.failures.fail(address):
            return
        block = self.settings.auth_block_seconds
        limit, window = self.settings.auth_failure_limit, self.settings.auth_failure_window_seconds
        log.warning(
            "blocking %s for %g s: %d requests with bad credentials within %g s",
            address,
            block,
            limit,
            window,
        )
        ctx: AppContext = scope["app"].state.ctx
        rid = scope.get("state", {}).get("request_id")

        def record() -> None:
            with ctx.db.write() as session:
                audit.record(
                    session=session,
                    ctx=AuditContext(actor=None, org_id=None, request_id=rid, client_ip=address),
                    action="auth.blocked",
                    resource=scope["path"],
                    result="denied",
                    details={"failures": limit, "window_seconds": window, "blocked_seconds": block},
                )

        try:
            await run_in_threadpool(record)
        except Exception:  # an audit failure must not turn the answer into a 500
            log.exception("could not record the block of %s", address)
