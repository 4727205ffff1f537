"""Notification use cases: destinations (admin-managed), `emit` (the outbox write) and the sender's
claim/record steps.

`emit` runs in the transaction of the event it reports (a run changing stage), so a notification exists
exactly when the change committed; delivery happens later, outside any transaction, in `sender.py`.
Destinations scoped to one workspace resolve it through the workspaces table directly (a small lookup,
no dependency on the workspaces service). The HMAC secret is sealed under the organization's data key and
opened only by the sender; it never appears in a response, the audit log or a delivery's error.
Callers own the transaction; nothing here commits.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import event as sa_event
from sqlalchemy import select
from sqlalchemy.orm import Session

from xcloudflow.audit import service as audit
from xcloudflow.audit.schemas import AuditContext
from xcloudflow.db.base import utcnow
from xcloudflow.db.pagination import check_limit, decode_cursor, encode_cursor
from xcloudflow.errors import Conflict, Invalid, NotFound
from xcloudflow.iam import service as iam
from xcloudflow.iam.schemas import Principal
from xcloudflow.keys import service as keys
from xcloudflow.keys.keyring import Keyring
from xcloudflow.notify.models import (
    DELIVERY_STATUSES,
    EVENTS,
    FORMATS,
    NotificationDelivery,
    NotificationDestination,
)
from xcloudflow.notify.schemas import (
    DeliveryOut,
    DeliveryPage,
    DestinationCreate,
    DestinationOut,
    DestinationUpdate,
)
from xcloudflow.workspaces.models import Workspace

TEST_EVENT = "test"
MAX_ERROR_CHARS = 500

# Set once a transaction that queued deliveries commits; the in-process sender waits on it. The outbox
# is the truth: a sender that misses the signal (another replica) still polls.
WAKE = threading.Event()
_PENDING = "xcf_notify_wake"


def _after_commit(session: Session) -> None:
    if session.info.pop(_PENDING, False):
        WAKE.set()


def _wake_after_commit(session: Session) -> None:
    if not session.info.get(_PENDING):
        session.info[_PENDING] = True
        sa_event.listen(session, "after_commit", _after_commit, once=True)


# ---------------------------------------------------------------- validation


def check_url(url: str) -> str:
    url = url.strip()
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError as exc:
        raise Invalid(f"url {url!r} is not a valid URL: {exc}", details={"field": "url"}) from exc
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise Invalid(
            f"url must be an http:// or https:// URL with a host; got {url!r}", details={"field": "url"}
        )
    if any(c.isspace() for c in url):
        raise Invalid("url must not contain whitespace", details={"field": "url"})
    return url


def check_format(fmt: str) -> str:
    if fmt not in FORMATS:
        raise Invalid(f"unknown format {fmt!r}: use one of {', '.join(FORMATS)}", details={"field": "format"})
    return fmt


def check_events(events: list[str] | None) -> list[str]:
    if events is None:
        return list(EVENTS)
    unknown = [e for e in events if e not in EVENTS]
    if unknown:
        raise Invalid(
            f"unknown event {unknown[0]!r}: known events are {', '.join(EVENTS)}",
            details={"field": "events", "unknown": unknown},
        )
    if not events:
        raise Invalid(
            "events must name at least one event (omit it for every event)", details={"field": "events"}
        )
    return [e for e in EVENTS if e in events]  # deduplicated, in a stable order


def redact_url(url: str) -> str:
    """Scheme and host only: a webhook URL's path is often its credential (Slack, Feishu)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = f":{parts.port}" if parts.port else ""
    rest = "/…" if (parts.path not in ("", "/") or parts.query) else "/"
    return f"{parts.scheme}://{host}{port}{rest}"


# ---------------------------------------------------------------- destinations


def _secret_aad(dest: NotificationDestination) -> bytes:
    return f"notify-destination:{dest.org_id}:{dest.id}".encode()


def _workspace_id(session: Session, org_id: int, address: str) -> int:
    project, _, name = address.partition("/")
    ws_id = session.scalars(
        select(Workspace.id).where(
            Workspace.org_id == org_id, Workspace.project == project, Workspace.name == name
        )
    ).first()
    if ws_id is None:
        raise Invalid(f"workspace {address} does not exist", details={"field": "workspace"})
    return ws_id


def _workspace_addresses(session: Session, ids: set[int]) -> dict[int, str]:
    if not ids:
        return {}
    rows = session.execute(
        select(Workspace.id, Workspace.project, Workspace.name).where(Workspace.id.in_(ids))
    )
    return {i: f"{p}/{n}" for i, p, n in rows}


def _out(dest: NotificationDestination, workspaces: dict[int, str], who: Principal) -> DestinationOut:
    return DestinationOut(
        id=dest.id,
        name=dest.name,
        url=dest.url if who.has("admin") else redact_url(dest.url),
        format=dest.format,
        events=list(dest.events),
        workspace=workspaces.get(dest.workspace_id) if dest.workspace_id is not None else None,
        enabled=dest.enabled,
        has_secret=dest.sealed_secret is not None,
        created_at=dest.created_at,
        created_by=dest.created_by,
    )


def _one_out(session: Session, dest: NotificationDestination, who: Principal) -> DestinationOut:
    ids = {dest.workspace_id} if dest.workspace_id is not None else set()
    return _out(dest, _workspace_addresses(session, ids), who)


def _destination(session: Session, org_id: int, name: str, *, lock: bool = False) -> NotificationDestination:
    stmt = select(NotificationDestination).where(
        NotificationDestination.org_id == org_id, NotificationDestination.name == name
    )
    if lock:
        stmt = stmt.with_for_update()
    dest = session.scalars(stmt).first()
    if dest is None:
        raise NotFound(f"no notification destination {name}")
    return dest


def _set_secret(
    session: Session, keyring: Keyring, dest: NotificationDestination, secret: str | None
) -> None:
    if not secret:
        dest.data_key_id, dest.sealed_secret = None, None
        return
    dest.data_key_id, dest.sealed_secret = keys.seal(
        session=session, keyring=keyring, org_id=dest.org_id, aad=_secret_aad(dest), chunks=[secret.encode()]
    )


def create_destination(
    *, session: Session, keyring: Keyring, principal: Principal, ctx: AuditContext, body: DestinationCreate
) -> DestinationOut:
    iam.require(principal, "admin", action="creating notification destinations")
    url, fmt, events = check_url(body.url), check_format(body.format), check_events(body.events)
    if session.scalars(
        select(NotificationDestination.id).where(
            NotificationDestination.org_id == principal.org_id, NotificationDestination.name == body.name
        )
    ).first():
        raise Conflict(f"notification destination {body.name} already exists")
    ws_id = _workspace_id(session, principal.org_id, body.workspace) if body.workspace else None
    dest = NotificationDestination(
        org_id=principal.org_id,
        workspace_id=ws_id,
        name=body.name,
        url=url,
        format=fmt,
        events=events,
        enabled=body.enabled,
        created_at=utcnow(),
        created_by=principal.user_name,
    )
    session.add(dest)
    session.flush()  # the id is part of the secret's AAD
    if body.secret is not None:
        _set_secret(session, keyring, dest, body.secret.get_secret_value())
        session.flush()
    audit.record(
        session=session,
        ctx=ctx,
        action="notify.destination.create",
        resource=f"notification-destination/{dest.name}",
        details={
            "format": fmt,
            "events": events,
            "workspace": body.workspace,
            "has_secret": body.secret is not None,
        },
    )
    return _one_out(session, dest, principal)


def list_destinations(*, session: Session, principal: Principal) -> list[DestinationOut]:
    dests = list(
        session.scalars(
            select(NotificationDestination)
            .where(NotificationDestination.org_id == principal.org_id)
            .order_by(NotificationDestination.name)
        )
    )
    workspaces = _workspace_addresses(session, {d.workspace_id for d in dests if d.workspace_id is not None})
    return [_out(d, workspaces, principal) for d in dests]


def show_destination(*, session: Session, principal: Principal, name: str) -> DestinationOut:
    return _one_out(session, _destination(session, principal.org_id, name), principal)


def update_destination(
    *,
    session: Session,
    keyring: Keyring,
    principal: Principal,
    ctx: AuditContext,
    name: str,
    body: DestinationUpdate,
) -> DestinationOut:
    iam.require(principal, "admin", action="changing notification destinations")
    dest = _destination(session, principal.org_id, name, lock=True)
    given = body.model_fields_set
    for key in ("url", "format", "events", "enabled"):
        if key in given and getattr(body, key) is None:
            raise Invalid(f"{key} cannot be null", details={"field": key})
    if body.url is not None:
        dest.url = check_url(body.url)
    if body.format is not None:
        dest.format = check_format(body.format)
    if body.events is not None:
        dest.events = check_events(body.events)
    if body.enabled is not None:
        dest.enabled = body.enabled
    if "workspace" in given:
        dest.workspace_id = (
            _workspace_id(session, principal.org_id, body.workspace) if body.workspace else None
        )
    if "secret" in given:
        _set_secret(session, keyring, dest, body.secret.get_secret_value() if body.secret else None)
    session.flush()
    audit.record(
        session=session,
        ctx=ctx,
        action="notify.destination.update",
        resource=f"notification-destination/{dest.name}",
        details={"fields": sorted(given)},  # never the values: the url or secret may be credentials
    )
    return _one_out(session, dest, principal)


def delete_destination(
    *, session: Session, principal: Principal, ctx: AuditContext, name: str
) -> DestinationOut:
    iam.require(principal, "admin", action="deleting notification destinations")
    dest = _destination(session, principal.org_id, name, lock=True)
    out = _one_out(session, dest, principal)
    session.delete(dest)  # its deliveries go with it (ON DELETE CASCADE)
    session.flush()
    audit.record(
        session=session,
        ctx=ctx,
        action="notify.destination.delete",
        resource=f"notification-destination/{name}",
    )
    return out


# ---------------------------------------------------------------- deliveries


def _delivery_out(row: NotificationDelivery, destination: str) -> DeliveryOut:
    return DeliveryOut(
        id=row.id,
        destination=destination,
        event=row.event,
        payload=row.payload,
        status=row.status,
        attempts=row.attempts,
        next_attempt_at=row.next_attempt_at if row.status == "pending" else None,
        response_status=row.response_status,
        last_error=row.last_error,
        created_at=row.created_at,
        sent_at=row.sent_at,
    )


def _queue(session: Session, dest_id: int, event: str, payload: dict[str, Any]) -> NotificationDelivery:
    now = utcnow()
    row = NotificationDelivery(
        destination_id=dest_id,
        event=event,
        payload=payload,
        status="pending",
        attempts=0,
        next_attempt_at=now,
        created_at=now,
    )
    session.add(row)
    return row


def queue_test(*, session: Session, principal: Principal, ctx: AuditContext, name: str) -> DeliveryOut:
    """Queue a `test` delivery to one destination (even a disabled one) and return it, still pending."""
    iam.require(principal, "admin", action="sending test notifications")
    dest = _destination(session, principal.org_id, name)
    row = _queue(
        session,
        dest.id,
        TEST_EVENT,
        {
            "message": "test notification from XCloudFlow",
            "destination": name,
            "requested_by": principal.user_name,
        },
    )
    session.flush()
    _wake_after_commit(session)
    audit.record(
        session=session,
        ctx=ctx,
        action="notify.destination.test",
        resource=f"notification-destination/{name}",
    )
    return _delivery_out(row, name)


def list_deliveries(
    *,
    session: Session,
    principal: Principal,
    name: str,
    status: str | None = None,
    cursor: str | None = None,
    limit: int = 50,
) -> DeliveryPage:
    """The destination's deliveries, newest first."""
    check_limit(limit)
    dest = _destination(session, principal.org_id, name)
    stmt = select(NotificationDelivery).where(NotificationDelivery.destination_id == dest.id)
    if status is not None:
        if status not in DELIVERY_STATUSES:
            raise Invalid(
                f"unknown status {status!r}: use one of {', '.join(DELIVERY_STATUSES)}",
                details={"field": "status"},
            )
        stmt = stmt.where(NotificationDelivery.status == status)
    after = decode_cursor(cursor)
    if after is not None:
        if not isinstance(after, int):
            raise Invalid("cursor is not one this server handed out", details={"field": "cursor"})
        stmt = stmt.where(NotificationDelivery.id < after)
    rows = list(session.scalars(stmt.order_by(NotificationDelivery.id.desc()).limit(limit + 1)))
    page = rows[:limit]
    return DeliveryPage(
        items=[_delivery_out(r, name) for r in page],
        next_cursor=encode_cursor(page[-1].id) if len(rows) > limit else None,
    )


def emit(
    *, session: Session, org_id: int, workspace_id: int | None, event: str, payload: dict[str, Any]
) -> int:
    """Queue `event` for every enabled destination of the organization that wants it; returns how many.

    Runs in the caller's transaction: the deliveries commit (and are sent) only if the caller commits.
    A destination matches when it covers every workspace or this one, and lists the event.
    """
    if event not in EVENTS:
        raise Invalid(f"unknown notification event {event!r}: known events are {', '.join(EVENTS)}")
    dests = session.execute(
        select(
            NotificationDestination.id, NotificationDestination.workspace_id, NotificationDestination.events
        ).where(NotificationDestination.org_id == org_id, NotificationDestination.enabled.is_(True))
    ).all()
    count = 0
    for dest_id, dest_ws, events in dests:
        if (dest_ws is None or dest_ws == workspace_id) and event in (events or ()):
            _queue(session, dest_id, event, payload)
            count += 1
    if count:
        session.flush()
        _wake_after_commit(session)
    return count


# ---------------------------------------------------------------- the sender's steps


@dataclass(frozen=True)
class ClaimedDelivery:
    """A delivery the sender holds a lease on, with what it needs to post it."""

    id: int
    attempt: int
    event: str
    payload: dict[str, Any]
    destination: str
    url: str
    format: str
    secret: bytes | None = field(repr=False)


def claim_due(
    *, session: Session, keyring: Keyring, now: datetime, limit: int, lease_seconds: float
) -> list[ClaimedDelivery]:
    """Take up to `limit` due pending deliveries: count the attempt and push `next_attempt_at` past the
    lease, so another sender leaves them alone while this one posts (outside any transaction).

    PostgreSQL skips rows another claimer holds (SKIP LOCKED); SQLite serializes write transactions.
    """
    rows = list(
        session.scalars(
            select(NotificationDelivery)
            .where(NotificationDelivery.status == "pending", NotificationDelivery.next_attempt_at <= now)
            .order_by(NotificationDelivery.next_attempt_at, NotificationDelivery.id)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
    )
    if not rows:
        return []
    dests = {
        d.id: d
        for d in session.scalars(
            select(NotificationDestination).where(
                NotificationDestination.id.in_({r.destination_id for r in rows})
            )
        )
    }
    claimed = []
    for row in rows:
        dest = dests[row.destination_id]
        secret = None
        if dest.sealed_secret is not None and dest.data_key_id is not None:
            secret = b"".join(
                keys.open_sealed(
                    session=session,
                    keyring=keyring,
                    data_key_id=dest.data_key_id,
                    aad=_secret_aad(dest),
                    blob=dest.sealed_secret,
                )
            )
        row.attempts += 1
        row.next_attempt_at = now + timedelta(seconds=lease_seconds)
        claimed.append(
            ClaimedDelivery(
                id=row.id,
                attempt=row.attempts,
                event=row.event,
                payload=row.payload,
                destination=dest.name,
                url=dest.url,
                format=dest.format,
                secret=secret,
            )
        )
    session.flush()
    return claimed


def retry_delay(attempt: int, *, base_seconds: float, max_seconds: float = 3600.0) -> float:
    """Exponential backoff: base, 2*base, 4*base, ... capped at `max_seconds`."""
    return float(min(base_seconds * 2 ** (attempt - 1), max_seconds))


def record_attempt(
    *,
    session: Session,
    claim: ClaimedDelivery,
    now: datetime,
    ok: bool,
    response_status: int | None,
    error: str | None,
    max_attempts: int,
    retry_base_seconds: float,
) -> str | None:
    """Record the outcome of one post; returns the delivery's new status (None if the claim was lost)."""
    row = session.get(NotificationDelivery, claim.id, with_for_update=True)
    if row is None or row.status != "pending" or row.attempts != claim.attempt:
        return None  # deleted meanwhile, or the lease ran out and another sender took it over
    row.response_status = response_status
    if ok:
        row.status, row.sent_at, row.last_error = "sent", now, None
    else:
        row.last_error = (error or "delivery failed")[:MAX_ERROR_CHARS]
        if row.attempts >= max_attempts:
            row.status = "failed"
        else:
            row.next_attempt_at = now + timedelta(
                seconds=retry_delay(row.attempts, base_seconds=retry_base_seconds)
            )
    session.flush()
    return row.status
