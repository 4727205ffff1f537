"""One place that turns every failure into the JSON error format.

`{"error": {"code", "message", "details"}}` for everything; answers about a held lock (423 and 409 on
lock paths) also carry the holder's LockInfo at the top level, because Terraform parses the body as a
LockInfo and `-lock-timeout` only retries when it finds the holder's ID there. Unexpected exceptions
are logged with the request id and answered with a 500 that reveals nothing else.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DataError
from starlette.exceptions import HTTPException as StarletteHTTPException

from xcloudflow.audit import service as audit
from xcloudflow.errors import DomainError, Forbidden, Locked, Unauthorized
from xcloudflow.metrics import STATE_LOCK_CONFLICTS
from xcloudflow.server.deps import app_context, audit_context

log = logging.getLogger("xcloudflow.server")

_HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "too_large",
    415: "unsupported_media_type",
    422: "validation_failed",
    423: "locked",
    429: "too_many_requests",
}


def error_body(code: str, message: str, details: Any = None) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "details": details}}


def _is_backend(request: Request) -> bool:
    return request.url.path.startswith(("/terraform/", "/pulumi/"))


def _headers(request: Request, status: int) -> dict[str, str]:
    headers = {}
    if status == 401:
        headers["WWW-Authenticate"] = 'Basic realm="xcloudflow"' if _is_backend(request) else "Bearer"
    rid = getattr(request.state, "request_id", None)
    if rid:
        headers["X-Request-ID"] = rid
    return headers


def _record_denied(request: Request, exc: Forbidden) -> None:
    who = getattr(request.state, "principal", None)
    if who is None or request.method in ("GET", "HEAD", "OPTIONS"):
        return
    ctx = app_context(request)
    try:
        with ctx.db.write() as session:
            audit.record(
                session=session,
                ctx=audit_context(request, who),
                action=f"http.{request.method.lower()}",
                resource=request.url.path,
                result="denied",
                details={"reason": exc.message},
            )
    except Exception:  # an audit failure must not hide the 403 itself
        log.exception("could not record a denied request")


async def domain_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, DomainError)
    body: dict[str, Any] = error_body(exc.code, exc.message, exc.details)
    if isinstance(exc, Locked):
        STATE_LOCK_CONFLICTS.labels(
            "pulumi" if request.url.path.startswith("/pulumi/") else "terraform"
        ).inc()
        if exc.lock_info:
            body = {**exc.lock_info, **body}
    if isinstance(exc, Forbidden):
        from starlette.concurrency import run_in_threadpool

        await run_in_threadpool(_record_denied, request, exc)
    if isinstance(exc, Unauthorized):
        log.info("unauthenticated %s %s: %s", request.method, request.url.path, exc.message)
    return JSONResponse(body, status_code=exc.status, headers=_headers(request, exc.status))


async def http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    code = _HTTP_CODES.get(exc.status_code, "http_error")
    message = exc.detail if isinstance(exc.detail, str) else code
    if exc.status_code == 404 and message == "Not Found":
        message = f"no such route: {request.method} {request.url.path}"
    if exc.status_code == 405:
        message = f"method {request.method} is not allowed on {request.url.path}"
    headers = {**_headers(request, exc.status_code), **(exc.headers or {})}
    return JSONResponse(error_body(code, message), status_code=exc.status_code, headers=headers)


async def validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    problems = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err.get("loc", ()))
        problems.append({"field": loc, "message": err.get("msg"), "type": err.get("type")})
    summary = "; ".join(f"{p['field']}: {p['message']}" for p in problems[:5])
    return JSONResponse(
        error_body("validation_failed", f"invalid request: {summary}", problems),
        status_code=422,
        headers=_headers(request, 422),
    )


def edge_response(
    request: Request, status: int, message: str, *, details: Any = None, headers: dict[str, str] | None = None
) -> JSONResponse:
    """An answer the HTTP edge gives before any route runs, in the same format as the handlers'."""
    code = _HTTP_CODES.get(status, "http_error")
    return JSONResponse(
        error_body(code, message, details),
        status_code=status,
        headers={**_headers(request, status), **(headers or {})},
    )


def problem_response(request: Request, field: str, message: str) -> JSONResponse:
    """A 422 naming the one field at fault, shaped like FastAPI's validation errors."""
    return edge_response(
        request,
        422,
        f"invalid request: {field}: {message}",
        details=[{"field": field, "message": message, "type": "value_error"}],
    )


async def data_error(request: Request, exc: Exception) -> JSONResponse:
    """The database refused a value (PostgreSQL: out of a column's range, NUL in text; SQLite: an
    integer beyond 64 bits). The edge and the parameter types refuse these first and name the field;
    this is the net behind them, so a value that slipped through is still a 422 and nothing is stored."""
    reason = str(getattr(exc, "orig", None) or exc).splitlines()[0][:200]
    log.info("database refused a value in %s %s: %s", request.method, request.url.path, reason)
    return problem_response(request, "request", f"a value cannot be stored: {reason}")


async def unexpected_error(request: Request, exc: Exception) -> JSONResponse:
    rid = getattr(request.state, "request_id", None)
    log.exception("unhandled error in %s %s (request %s)", request.method, request.url.path, rid)
    return JSONResponse(
        error_body("internal", f"internal server error (request id {rid}); see the server log"),
        status_code=500,
        headers=_headers(request, 500),
    )


def install(app: FastAPI) -> None:
    app.add_exception_handler(DomainError, domain_error)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(DataError, data_error)
    app.add_exception_handler(OverflowError, data_error)
    app.add_exception_handler(Exception, unexpected_error)
