"""The Terraform HTTP backend and the Pulumi state endpoints (thin: parse, authorize, call service).

Terraform (internal/backend/remote-state/http): GET -> 200 bytes + Content-MD5 or 204; POST with
Content-MD5 and `?ID=<lock id>`; LOCK/UNLOCK with a LockInfo body (UNLOCK with an empty body from
`terraform force-unlock`). Also the seed's `/terraform/lock|unlock/{project}/{stack}` (POST) and
GitLab's `POST|DELETE /terraform/state/{project}/{stack}/lock`. Pulumi: GET/PUT of a stack export.
"""

from __future__ import annotations

import json

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import StreamingResponse
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool

from xcloudflow.errors import Invalid, MethodNotAllowed, TooLarge
from xcloudflow.iam.schemas import Permission, Principal
from xcloudflow.iam.service import require, require_permission
from xcloudflow.metrics import STATE_WRITE_BYTES, STATE_WRITES
from xcloudflow.server.deps import app_context, audit_context, principal
from xcloudflow.state import locking, service
from xcloudflow.state.documents import NAME_RE, StackRef, Upload
from xcloudflow.state.schemas import LockInfo

router = APIRouter(tags=["backend"])


def stream_state(content: service.StateContent) -> StreamingResponse:
    """A version's exact bytes, decrypted as they are sent, with Content-MD5 and ETag (or, for an
    outputs-only caller, the redacted document, marked by `X-XCF-State: outputs-only`)."""
    headers = {
        "Content-MD5": content.md5_base64,
        "ETag": f'"{content.version.etag}"',
        "Content-Length": str(content.version.size),
        "X-XCF-Version": str(content.version.version),
    }
    if content.outputs_only:
        headers["X-XCF-State"] = "outputs-only"
    return StreamingResponse(content.chunks, media_type="application/json", headers=headers)


def read_state(request: Request, ref: StackRef, who: Principal) -> Response:
    """The raw state for `state:read`; for an outputs-only principal (readers) a state holding only the
    non-sensitive outputs, so `terraform_remote_state` works and no secret leaves."""
    ctx = app_context(request)
    with ctx.db.read() as session:
        if who.can(Permission.STATE_READ):
            content = service.read_content(session=session, keyring=ctx.keyring, org_id=who.org_id, ref=ref)
        else:
            require_permission(who, Permission.STATE_READ_OUTPUTS, action="reading state")
            content = service.read_outputs_only(
                session=session, keyring=ctx.keyring, org_id=who.org_id, ref=ref
            )
    if content is None:
        return Response(status_code=204)
    return stream_state(content)


async def receive_upload(request: Request, *, max_bytes: int) -> Upload:
    length = request.headers.get("content-length")
    if length and length.isdigit() and int(length) > max_bytes:
        raise TooLarge(
            f"state is larger than the limit of {max_bytes} bytes (XCF_STATE_MAX_BYTES)",
            details={"limit": max_bytes},
        )
    upload = Upload(max_bytes=max_bytes)
    try:
        async for chunk in request.stream():
            upload.add(chunk)
        upload.finish()
        upload.check_content_md5(request.headers.get("content-md5"))
    except BaseException:
        upload.close()
        raise
    return upload


async def write_state(request: Request, ref: StackRef, who: Principal, lock_id: str | None) -> Response:
    require(who, "writer", action="writing state")
    ctx = app_context(request)
    upload = await receive_upload(request, max_bytes=ctx.settings.state_max_bytes)

    def store() -> None:
        with ctx.db.write() as session:
            service.write_state(
                session=session,
                keyring=ctx.keyring,
                ctx=audit_context(request, who),
                org_id=who.org_id,
                ref=ref,
                upload=upload,
                lock_id=lock_id,
            )

    try:
        await run_in_threadpool(store)
    finally:
        upload.close()
    STATE_WRITES.labels(ref.tool, "backend").inc()
    STATE_WRITE_BYTES.labels(ref.tool).inc(upload.size)
    return Response(status_code=200)


async def _lock_info(request: Request) -> LockInfo | None:
    raw = await request.body()
    if not raw.strip():
        return None
    try:
        return LockInfo.model_validate(json.loads(raw))
    except (ValueError, ValidationError) as exc:
        raise Invalid(
            f"lock body must be a Terraform LockInfo JSON object with a non-empty ID: {exc}"
        ) from exc


async def lock(request: Request, ref: StackRef, who: Principal) -> Response:
    require(who, "writer", action="locking state")
    info = await _lock_info(request)
    if info is None:
        raise Invalid("LOCK needs a LockInfo body with an ID")
    ctx = app_context(request)

    def take() -> LockInfo:
        with ctx.db.write() as session:
            return locking.acquire(
                session=session, ctx=audit_context(request, who), org_id=who.org_id, ref=ref, info=info
            )

    held = await run_in_threadpool(take)
    return Response(content=held.model_dump_json(), media_type="application/json")


async def unlock(request: Request, ref: StackRef, who: Principal) -> Response:
    require(who, "writer", action="unlocking state")
    info = await _lock_info(request)
    ctx = app_context(request)

    def release() -> LockInfo:
        with ctx.db.write() as session:
            return locking.release(
                session=session,
                ctx=audit_context(request, who),
                org_id=who.org_id,
                ref=ref,
                lock_id=info.ID if info else None,
            )

    released = await run_in_threadpool(release)
    return Response(content=released.model_dump_json(), media_type="application/json")


def delete(request: Request, ref: StackRef, who: Principal) -> Response:
    require(who, "writer", action="deleting state")
    ctx = app_context(request)
    with ctx.db.write() as session:
        service.delete_stack(session=session, ctx=audit_context(request, who), org_id=who.org_id, ref=ref)
    return Response(status_code=200)


# ---- Terraform ----


@router.get("/terraform/state/{project}/{stack}", summary="Terraform: read the current state")
def tf_get(request: Request, project: str, stack: str, who: Principal = Depends(principal)) -> Response:
    return read_state(request, StackRef.parse("terraform", project, stack), who)


@router.post("/terraform/state/{project}/{stack}", summary="Terraform: write a new state version")
async def tf_post(
    request: Request,
    project: str,
    stack: str,
    ID: str | None = None,
    who: Principal = Depends(principal),
) -> Response:
    return await write_state(request, StackRef.parse("terraform", project, stack), who, ID or None)


@router.delete("/terraform/state/{project}/{stack}", summary="Terraform: soft-delete the stack")
def tf_delete(request: Request, project: str, stack: str, who: Principal = Depends(principal)) -> Response:
    return delete(request, StackRef.parse("terraform", project, stack), who)


@router.api_route("/terraform/state/{project}/{stack}", methods=["LOCK"], include_in_schema=False)
@router.post("/terraform/lock/{project}/{stack}", summary="Terraform: take the lock (seed path)")
@router.post("/terraform/state/{project}/{stack}/lock", summary="Terraform: take the lock (GitLab path)")
async def tf_lock(
    request: Request, project: str, stack: str, who: Principal = Depends(principal)
) -> Response:
    return await lock(request, StackRef.parse("terraform", project, stack), who)


@router.api_route("/terraform/state/{project}/{stack}", methods=["UNLOCK"], include_in_schema=False)
@router.post("/terraform/unlock/{project}/{stack}", summary="Terraform: release the lock (seed path)")
@router.delete("/terraform/state/{project}/{stack}/lock", summary="Terraform: release the lock (GitLab path)")
async def tf_unlock(
    request: Request, project: str, stack: str, who: Principal = Depends(principal)
) -> Response:
    return await unlock(request, StackRef.parse("terraform", project, stack), who)


# ---- Pulumi ----


@router.get("/pulumi/state/{project}/{stack}", summary="Pulumi: read the current stack export")
def pulumi_get(request: Request, project: str, stack: str, who: Principal = Depends(principal)) -> Response:
    return read_state(request, StackRef.parse("pulumi", project, stack), who)


@router.put("/pulumi/state/{project}/{stack}", summary="Pulumi: store a stack export as a new version")
@router.post("/pulumi/state/{project}/{stack}", include_in_schema=False)
async def pulumi_put(
    request: Request,
    project: str,
    stack: str,
    ID: str | None = None,
    who: Principal = Depends(principal),
) -> Response:
    return await write_state(request, StackRef.parse("pulumi", project, stack), who, ID or None)


@router.api_route("/pulumi/state/{project}/{stack}", methods=["LOCK"], include_in_schema=False)
async def pulumi_lock(
    request: Request, project: str, stack: str, who: Principal = Depends(principal)
) -> Response:
    return await lock(request, StackRef.parse("pulumi", project, stack), who)


@router.api_route("/pulumi/state/{project}/{stack}", methods=["UNLOCK"], include_in_schema=False)
async def pulumi_unlock(
    request: Request, project: str, stack: str, who: Principal = Depends(principal)
) -> Response:
    return await unlock(request, StackRef.parse("pulumi", project, stack), who)


# ---- anything else under the backend prefixes is a malformed address ----

_ANY = ["GET", "POST", "PUT", "DELETE", "LOCK", "UNLOCK", "PATCH", "HEAD"]


@router.api_route("/terraform/{rest:path}", methods=_ANY, include_in_schema=False)
@router.api_route("/pulumi/{rest:path}", methods=_ANY, include_in_schema=False)
def bad_address(request: Request, rest: str) -> Response:
    parts = rest.split("/")
    if len(parts) == 3 and parts[0] == "state" and all(NAME_RE.match(p) for p in parts[1:]):
        raise MethodNotAllowed(f"method {request.method} is not allowed on {request.url.path}")
    raise Invalid(
        f"{request.url.path} is not a state address: use /terraform/state/{{project}}/{{stack}} or "
        "/pulumi/state/{project}/{stack}, where project and stack are names without '/'",
        details={"path": request.url.path},
    )
