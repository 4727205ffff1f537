"""GitOps source use cases: register, list, show, delete sources; status and events; the webhook
check; which sources are due. Where a source may fetch from (the URL and local roots checks) is
`urls.py`.

A source row holds the ConfluxSource spec and its status (last fetched and synced commit, the Ready
condition, per-document results); events are rows beside it. The webhook secret is generated here,
returned once by `create_source`, and stored sealed under the organization's data key. Nothing here
fetches a repository or publishes: that is `sync.py`, which owns its transactions because a git fetch
must never hold one. Messages stored here must already be free of secrets (the sync masks them).
Callers own the transaction; nothing here commits.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets as pysecrets
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy import event as sa_event
from sqlalchemy.orm import Session

from xcloudflow.audit import service as audit
from xcloudflow.audit.schemas import AuditContext
from xcloudflow.compose.repo import mask
from xcloudflow.db.base import utcnow
from xcloudflow.errors import Conflict, Invalid, NotFound, Unauthorized
from xcloudflow.gitops.models import GitopsEvent, GitopsSource
from xcloudflow.gitops.schemas import (
    Condition,
    DocumentResult,
    EventOut,
    GitRef,
    LocalObjectRef,
    OrphanedConfig,
    SourceCreate,
    SourceCreated,
    SourceOut,
    SourceStatus,
    SourceUpdate,
)
from xcloudflow.gitops.urls import check_url
from xcloudflow.iam import service as iam
from xcloudflow.iam.schemas import Principal
from xcloudflow.keys import service as keys
from xcloudflow.keys.keyring import Keyring

MIN_INTERVAL_SECONDS = 10
MAX_INTERVAL_SECONDS = 7 * 24 * 3600
MAX_EVENTS_PER_SOURCE = 500
MAX_MESSAGE_CHARS = 4000
_DURATION = re.compile(r"^(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$")
_REF = re.compile(r"^(?!-)(?!.*\.\.)[A-Za-z0-9._/@+-]{1,256}$")

# Set once a transaction that made a source due (webhook, new source) commits; the server's sync loop
# waits on it. The database is the truth: a loop that misses the signal finds due sources next tick.
WAKE = threading.Event()
_PENDING = "xcf_gitops_wake"


@sa_event.listens_for(Session, "after_commit")
def _after_commit(session: Session) -> None:
    if session.info.pop(_PENDING, False):
        WAKE.set()


@dataclass(frozen=True)
class SourceSpec:
    """What a sync needs of a source, read in one short transaction."""

    id: int
    org_id: int
    org_name: str  # the local roots a sync may read are the organization's (settings.LocalRoots)
    name: str
    url: str
    ref: str
    ref_kind: str
    path: str
    secret_ref: str | None
    last_synced_commit: str | None
    prune: bool = False
    managed: dict[str, str] = field(default_factory=dict)  # address -> file of the configs it published


@dataclass
class SyncRecord:
    """What the `documents` JSON column holds (no migration: the column existed as a list of results).

    `prune` is the source's spec.prune; `managed` the configs this source published or found up to
    date (address -> repository file), the tracking Argo CD keeps in a label on the live object: it is
    what makes a config whose document left Git an orphan of this source rather than someone else's.
    A list (what older versions stored) is the results alone, managed = their published addresses."""

    prune: bool = False
    results: list[DocumentResult] = field(default_factory=list)
    managed: dict[str, str] = field(default_factory=dict)
    orphans: list[OrphanedConfig] = field(default_factory=list)

    @classmethod
    def of(cls, row: GitopsSource) -> SyncRecord:
        stored: Any = row.documents
        if isinstance(stored, dict):
            return cls(
                prune=bool(stored.get("prune", False)),
                results=[DocumentResult.model_validate(d) for d in stored.get("results") or []],
                managed={str(k): str(v) for k, v in (stored.get("managed") or {}).items()},
                orphans=[OrphanedConfig.model_validate(o) for o in stored.get("orphans") or []],
            )
        results = [DocumentResult.model_validate(d) for d in stored or []]
        managed = {d.address: d.path for d in results if d.address and d.result in ("published", "unchanged")}
        return cls(results=results, managed=managed)

    def store(self, row: GitopsSource) -> None:
        row.documents = {
            "prune": self.prune,
            "results": [d.model_dump() for d in self.results],
            "managed": dict(sorted(self.managed.items())),
            "orphans": [o.model_dump() for o in self.orphans],
        }


def parse_interval(text: str) -> int:
    """Go duration ("30s", "1m", "1h30m") -> seconds, within [10 s, 7 days]."""
    match = _DURATION.match(text.strip())
    if not text.strip() or match is None:
        raise Invalid(
            f'interval {text!r} is not a duration such as "30s", "1m" or "1h30m"',
            details={"field": "interval"},
        )
    hours, minutes, seconds = (int(g or 0) for g in match.groups())
    total = hours * 3600 + minutes * 60 + seconds
    if not MIN_INTERVAL_SECONDS <= total <= MAX_INTERVAL_SECONDS:
        raise Invalid(
            f"interval {text!r} must be between {MIN_INTERVAL_SECONDS} s and 7 days",
            details={"field": "interval"},
        )
    return total


def check_path(path: str) -> str:
    parts = [p for p in path.replace("\\", "/").split("/") if p not in ("", ".")]
    if path.startswith("/") or ".." in parts or "\x00" in path:
        raise Invalid(
            f"path {path!r} must be a directory inside the repository (relative, no '..')",
            details={"field": "path"},
        )
    return "/".join(parts)


def _ref_of(ref: GitRef) -> tuple[str, str]:
    for kind in ("branch", "tag", "commit"):
        value = getattr(ref, kind)
        if value is not None:
            if not _REF.match(value):
                raise Invalid(f"ref {kind} {value!r} is not a valid git ref name", details={"field": "ref"})
            return kind, value
    raise Invalid("ref needs exactly one of branch, tag or commit", details={"field": "ref"})


def _webhook_aad(org_id: int, name: str) -> bytes:
    return f"xcf:gitops-webhook:{org_id}:{name}".encode()


def webhook_path(name: str) -> str:
    return f"/api/v1/gitops/webhook/{name}"


def _status(row: GitopsSource) -> SourceStatus:
    record = SyncRecord.of(row)
    return SourceStatus(
        sync_status=_sync_status(row, record),
        last_fetched_commit=row.last_fetched_commit,
        last_fetched_at=row.last_fetched_at,
        last_synced_commit=row.last_synced_commit,
        last_synced_at=row.last_synced_at,
        last_attempt_at=row.last_attempt_at,
        next_sync_at=None if row.suspended else row.next_sync_at,
        conditions=[
            Condition(
                status=row.ready_status,
                reason=row.ready_reason,
                message=row.ready_message,
                last_transition_time=row.ready_changed_at,
            )
        ],
        documents=record.results,
        orphans=record.orphans,
    )


def _sync_status(row: GitopsSource, record: SyncRecord) -> str:
    if row.last_fetched_commit is None or row.ready_reason == "FetchFailed":
        return "Unknown"  # as Argo CD when it cannot compare
    if record.orphans or row.last_synced_commit != row.last_fetched_commit or row.ready_status != "True":
        return "OutOfSync"
    return "Synced"


def _out(row: GitopsSource) -> SourceOut:
    return SourceOut(
        name=row.name,
        url=mask(row.url),
        ref=GitRef.model_validate({row.ref_kind: row.ref_name}),
        interval=row.interval,
        path=row.path,
        secret_ref=LocalObjectRef(name=row.secret_ref) if row.secret_ref else None,
        suspend=row.suspended,
        prune=SyncRecord.of(row).prune,
        webhook_path=webhook_path(row.name),
        created_at=row.created_at,
        created_by=row.created_by,
        status=_status(row),
    )


def _row(session: Session, org_id: int, name: str, *, lock: bool = False) -> GitopsSource:
    stmt = select(GitopsSource).where(GitopsSource.org_id == org_id, GitopsSource.name == name)
    row = session.scalars(stmt.with_for_update() if lock else stmt).first()
    if row is None:
        raise NotFound(f"no GitOps source {name}")
    return row


def create_source(
    *,
    session: Session,
    keyring: Keyring,
    principal: Principal,
    ctx: AuditContext,
    body: SourceCreate,
    local_roots: Sequence[Path] = (),
) -> SourceCreated:
    iam.require(principal, "writer", action="adding GitOps sources")
    url = check_url(body.url, body.secret_ref, local_roots=local_roots)
    ref_kind, ref_name = _ref_of(body.ref)
    seconds = parse_interval(body.interval)
    path = check_path(body.path)
    if session.scalars(
        select(GitopsSource.id).where(GitopsSource.org_id == principal.org_id, GitopsSource.name == body.name)
    ).first():
        raise Conflict(f"GitOps source {body.name} already exists")
    webhook_secret = pysecrets.token_urlsafe(32)
    key_id, sealed = keys.seal(
        session=session,
        keyring=keyring,
        org_id=principal.org_id,
        aad=_webhook_aad(principal.org_id, body.name),
        chunks=[webhook_secret.encode()],
    )
    now = utcnow()
    row = GitopsSource(
        org_id=principal.org_id,
        name=body.name,
        url=url,
        ref_kind=ref_kind,
        ref_name=ref_name,
        interval=body.interval.strip(),
        interval_seconds=seconds,
        path=path,
        secret_ref=body.secret_ref.name if body.secret_ref else None,
        suspended=body.suspend,
        data_key_id=key_id,
        sealed_webhook_secret=sealed,
        created_at=now,
        created_by=principal.user_name,
        updated_at=now,
        next_sync_at=now,
        ready_status="Unknown",
        ready_reason="Created",
        ready_message="waiting for the first sync",
        ready_changed_at=now,
    )
    SyncRecord(prune=body.prune).store(row)
    session.add(row)
    session.flush()
    _changed(
        session=session,
        ctx=ctx,
        row=row,
        reason="Created",
        message=f"source created by {principal.user_name}",
        action="gitops.source.create",
        details={
            "url": mask(url),
            "ref": {ref_kind: ref_name},
            "interval": row.interval,
            "path": path,
            "prune": body.prune,
        },
        now=now,
    )
    if not row.suspended:
        session.info[_PENDING] = True
    return SourceCreated(**_out(row).model_dump(), webhook_secret=webhook_secret)


def list_sources(*, session: Session, principal: Principal) -> list[SourceOut]:
    rows = session.scalars(
        select(GitopsSource).where(GitopsSource.org_id == principal.org_id).order_by(GitopsSource.name)
    )
    return [_out(r) for r in rows]


def show_source(*, session: Session, principal: Principal, name: str) -> SourceOut:
    return _out(_row(session, principal.org_id, name))


def update_source(
    *, session: Session, principal: Principal, ctx: AuditContext, name: str, body: SourceUpdate
) -> SourceOut:
    """Turn prune or suspend on or off. Resuming makes the source due now; turning prune on takes
    effect at the next sync (`status.orphans` are then deleted if every document syncs)."""
    iam.require(principal, "writer", action="changing GitOps sources")
    row = _row(session, principal.org_id, name, lock=True)
    record = SyncRecord.of(row)
    now = utcnow()
    changed: dict[str, bool] = {}
    if body.prune is not None and body.prune != record.prune:
        record.prune = changed["prune"] = body.prune
        record.store(row)
    if body.suspend is not None and body.suspend != row.suspended:
        row.suspended = changed["suspend"] = body.suspend
        if not body.suspend:
            row.next_sync_at = now
            session.info[_PENDING] = True
    if not changed:
        return _out(row)
    row.updated_at = now
    session.flush()
    said = ", ".join(f"{k} {'on' if v else 'off'}" for k, v in changed.items())
    _changed(
        session=session,
        ctx=ctx,
        row=row,
        reason="Updated",
        message=f"{said} by {principal.user_name}",
        action="gitops.source.update",
        details=changed,
        now=now,
    )
    return _out(row)


def delete_source(*, session: Session, principal: Principal, ctx: AuditContext, name: str) -> None:
    """Forget a source; what it published stays in Conflux (versions are history)."""
    iam.require(principal, "writer", action="deleting GitOps sources")
    row = _row(session, principal.org_id, name, lock=True)
    session.execute(delete(GitopsEvent).where(GitopsEvent.source_id == row.id))
    session.delete(row)
    session.flush()
    audit.record(session=session, ctx=ctx, action="gitops.source.delete", resource=f"gitops-source/{name}")


def list_events(*, session: Session, principal: Principal, name: str, limit: int = 100) -> list[EventOut]:
    """Newest first (by last occurrence)."""
    if not 1 <= limit <= 500:
        raise Invalid("limit must be between 1 and 500", details={"field": "limit"})
    row = _row(session, principal.org_id, name)
    events = session.scalars(
        select(GitopsEvent)
        .where(GitopsEvent.source_id == row.id)
        .order_by(GitopsEvent.last_at.desc(), GitopsEvent.id.desc())
        .limit(limit)
    )
    return [
        EventOut(
            id=e.id,
            type=e.type,
            reason=e.reason,
            message=e.message,
            commit=e.commit,
            count=e.count,
            first_at=e.first_at,
            last_at=e.last_at,
        )
        for e in events
    ]


def add_event(
    *,
    session: Session,
    source_id: int,
    type: str,
    reason: str,
    message: str,
    commit: str | None = None,
    now: datetime | None = None,
) -> None:
    """Record an event; the same (type, reason, message, commit) as a recent one bumps its count."""
    now = now or utcnow()
    message = message[:MAX_MESSAGE_CHARS]
    same = session.scalars(
        select(GitopsEvent)
        .where(
            GitopsEvent.source_id == source_id,
            GitopsEvent.type == type,
            GitopsEvent.reason == reason,
            GitopsEvent.message == message,
            GitopsEvent.last_at >= now - timedelta(hours=24),
        )
        .order_by(GitopsEvent.id.desc())
        .limit(1)
    ).first()
    if same is not None and same.commit == commit:
        same.count += 1
        same.last_at = now
    else:
        session.add(
            GitopsEvent(
                source_id=source_id,
                type=type,
                reason=reason,
                message=message,
                commit=commit,
                count=1,
                first_at=now,
                last_at=now,
            )
        )
    session.flush()


def trim_events(*, session: Session, source_id: int) -> None:
    """Keep the newest MAX_EVENTS_PER_SOURCE events of a source."""
    cutoff = session.scalars(
        select(GitopsEvent.id)
        .where(GitopsEvent.source_id == source_id)
        .order_by(GitopsEvent.id.desc())
        .offset(MAX_EVENTS_PER_SOURCE)
        .limit(1)
    ).first()
    if cutoff is not None:
        session.execute(
            delete(GitopsEvent).where(GitopsEvent.source_id == source_id, GitopsEvent.id <= cutoff)
        )


def _changed(
    *,
    session: Session,
    ctx: AuditContext,
    row: GitopsSource,
    reason: str,
    message: str,
    action: str,
    details: dict[str, Any],
    now: datetime,
) -> None:
    """Someone changed a source or asked it to sync: its Normal event and the audit row."""
    add_event(session=session, source_id=row.id, type="Normal", reason=reason, message=message, now=now)
    audit.record(
        session=session, ctx=ctx, action=action, resource=f"gitops-source/{row.name}", details=details
    )


# ---------------------------------------------------------------- what a sync reads and writes


def spec_of(*, session: Session, org_id: int, name: str) -> SourceSpec:
    row = _row(session, org_id, name)
    record = SyncRecord.of(row)
    return SourceSpec(
        id=row.id,
        org_id=row.org_id,
        org_name=iam.org_name(session=session, org_id=row.org_id),
        name=row.name,
        url=row.url,
        ref=row.ref_name,
        ref_kind=row.ref_kind,
        path=row.path,
        secret_ref=row.secret_ref,
        last_synced_commit=row.last_synced_commit,
        prune=record.prune,
        managed=record.managed,
    )


def record_fetch(
    *, session: Session, source_id: int, commit: str | None, now: datetime, error: str | None = None
) -> None:
    row = session.get_one(GitopsSource, source_id, with_for_update=True)
    row.last_attempt_at = now
    if error is not None:
        set_ready(row, "False", "FetchFailed", error, now)
        add_event(
            session=session, source_id=row.id, type="Warning", reason="FetchFailed", message=error, now=now
        )
        return
    if commit != row.last_fetched_commit:
        add_event(
            session=session,
            source_id=row.id,
            type="Normal",
            reason="NewCommit",
            message=f"fetched new commit {commit}",
            commit=commit,
            now=now,
        )
    row.last_fetched_commit, row.last_fetched_at = commit, now
    session.flush()


def set_ready(row: GitopsSource, status: str, reason: str, message: str, now: datetime) -> None:
    if row.ready_status != status:
        row.ready_changed_at = now
    row.ready_status, row.ready_reason, row.ready_message = status, reason, message[:MAX_MESSAGE_CHARS]


def record_result(
    *,
    session: Session,
    ctx: AuditContext,
    source_id: int,
    commit: str,
    documents: list[DocumentResult],
    problem: str | None,
    trigger: str,
    now: datetime,
    managed: dict[str, str] | None = None,
    orphans: Sequence[OrphanedConfig] | None = None,
) -> SourceOut:
    """The outcome of a sync: per-document results (`pruned` ones included), the configs the source
    now manages and its orphans, the Ready condition, events, the audit row. `problem` fails the whole
    sync (e.g. the path is missing) before any document; `managed`/`orphans` None keep the previous."""
    row = session.get_one(GitopsSource, source_id, with_for_update=True)
    record = SyncRecord.of(row)
    record.results = list(documents)
    if managed is not None:
        record.managed = dict(managed)
    if orphans is not None:
        record.orphans = list(orphans)
    record.store(row)
    row.last_attempt_at = now
    events = [e for e in map(_document_event, documents) if e is not None]
    events += [
        ("Warning", "Orphaned", f"{o.path}: {o.message}")
        for o in (record.orphans if orphans is not None else ())
    ]
    for type_, reason, message in events:
        add_event(
            session=session,
            source_id=row.id,
            type=type_,
            reason=reason,
            message=message,
            commit=commit,
            now=now,
        )
    kinds = ("published", "unchanged", "failed", "pruned")
    counts = {k: sum(1 for d in documents if d.result == k) for k in kinds}
    summary = f"{counts['published']} published, {counts['unchanged']} unchanged, {counts['failed']} failed"
    if counts["pruned"]:
        summary += f", {counts['pruned']} pruned"
    if record.orphans:
        summary += f"; {len(record.orphans)} orphaned (require pruning)"
    short = commit[:12]
    if problem is not None:
        set_ready(row, "False", "SyncFailed", f"commit {short}: {problem}", now)
        type_, reason, message = "Warning", "SyncFailed", problem
    elif counts["failed"]:
        first = next(d for d in documents if d.result == "failed")
        failure = f"{_where(first)}: {first.message}"
        set_ready(
            row, "False", "DocumentsFailed", f"commit {short}: {summary}; first failure: {failure}", now
        )
        type_, reason, message = "Warning", "SyncFailed", summary
    else:
        row.last_synced_commit, row.last_synced_at = commit, now
        set_ready(row, "True", "Synced", f"commit {short} synced: {summary}", now)
        type_, reason, message = "Normal", "Synced", summary
    add_event(
        session=session, source_id=row.id, type=type_, reason=reason, message=message, commit=commit, now=now
    )
    trim_events(session=session, source_id=row.id)
    session.flush()
    audit.record(
        session=session,
        ctx=ctx,
        action="gitops.sync",
        resource=f"gitops-source/{row.name}",
        result="success" if problem is None and not counts["failed"] else "failure",
        details={
            "commit": commit,
            "trigger": trigger,
            **counts,
            "pruned_configs": [d.address for d in documents if d.result == "pruned"],
            "orphans": [o.address for o in record.orphans],
        },
    )
    return _out(row)


def _where(doc: DocumentResult) -> str:
    return f"{doc.path}:{doc.line}" if doc.line else doc.path


def _document_event(doc: DocumentResult) -> tuple[str, str, str] | None:
    """(type, reason, message) of the event a document's result gets; none for `unchanged`."""
    if doc.result == "published":
        return "Normal", "Published", f"{doc.path}: published {doc.address} version {doc.version}"
    if doc.result == "pruned":
        return "Normal", "Pruned", f"{doc.path}: removed from Git, deleted config {doc.address}"
    if doc.result == "failed":
        return "Warning", "DocumentFailed", f"{_where(doc)}: {doc.message}"
    return None


def record_up_to_date(
    *, session: Session, ctx: AuditContext, source_id: int, commit: str, trigger: str, now: datetime
) -> SourceOut:
    """The fetched commit is the last fully synced one: nothing to do. Audited unless the interval
    loop asked (that would be one audit row per source per interval)."""
    row = session.get_one(GitopsSource, source_id, with_for_update=True)
    row.last_attempt_at = now
    if row.ready_status != "True":
        set_ready(row, "True", "Synced", f"commit {commit[:12]} synced", now)
    session.flush()
    if trigger != "interval":
        audit.record(
            session=session,
            ctx=ctx,
            action="gitops.sync",
            resource=f"gitops-source/{row.name}",
            details={"commit": commit, "trigger": trigger, "up_to_date": True},
        )
    return _out(row)


def claim_due(*, session: Session, now: datetime, limit: int = 20) -> list[tuple[int, str]]:
    """(org_id, name) of sources due for an interval sync; their next sync moves one interval on, so
    another replica does not take them too."""
    rows = session.scalars(
        select(GitopsSource)
        .where(GitopsSource.suspended.is_(False), GitopsSource.next_sync_at <= now)
        .order_by(GitopsSource.next_sync_at)
        .limit(limit)
        .with_for_update(skip_locked=True)
    ).all()
    for row in rows:
        row.next_sync_at = now + timedelta(seconds=row.interval_seconds)
    session.flush()
    return [(r.org_id, r.name) for r in rows]


# ---------------------------------------------------------------- webhook


def _webhook_secret(session: Session, keyring: Keyring, row: GitopsSource) -> bytes:
    return b"".join(
        keys.open_sealed(
            session=session,
            keyring=keyring,
            data_key_id=row.data_key_id,
            aad=_webhook_aad(row.org_id, row.name),
            blob=row.sealed_webhook_secret,
        )
    )


def receive_webhook(
    *,
    session: Session,
    keyring: Keyring,
    name: str,
    body: bytes,
    signature: str | None,
    event: str | None,
    client_ip: str | None,
    request_id: str | None,
) -> tuple[bool, str]:
    """Verify GitHub's `X-Hub-Signature-256: sha256=<hex>` over `body` with the source's webhook
    secret (Unauthorized when missing or wrong, without saying whether the source exists); a push to
    the source's branch (or any push when the payload names no ref) makes the source due now.
    Returns (accepted, message)."""
    if not signature or not signature.startswith("sha256="):
        raise Unauthorized("missing or malformed X-Hub-Signature-256 header (expected sha256=<hex>)")
    given = signature[len("sha256=") :].strip().lower()
    candidates = session.scalars(
        select(GitopsSource).where(GitopsSource.name == name).with_for_update()
    ).all()
    row = None
    for candidate in candidates:
        expected = hmac.new(_webhook_secret(session, keyring, candidate), body, hashlib.sha256).hexdigest()
        if hmac.compare_digest(expected, given):
            row = candidate
            break
    if row is None:
        raise Unauthorized("webhook signature does not verify")
    ctx = AuditContext(
        actor=f"webhook:{row.name}", org_id=row.org_id, request_id=request_id, client_ip=client_ip
    )
    now = utcnow()
    if event == "ping":
        add_event(
            session=session,
            source_id=row.id,
            type="Normal",
            reason="WebhookPing",
            message="webhook ping received",
            now=now,
        )
        return True, "pong"
    pushed = _pushed_ref(body)
    wanted = f"refs/heads/{row.ref_name}" if row.ref_kind == "branch" else None
    if pushed is not None and wanted is not None and pushed != wanted:
        message = f"push to {pushed} ignored: the source follows {wanted}"
        add_event(
            session=session,
            source_id=row.id,
            type="Normal",
            reason="WebhookIgnored",
            message=message,
            now=now,
        )
        return False, message
    row.next_sync_at = now
    _changed(
        session=session,
        ctx=ctx,
        row=row,
        reason="WebhookReceived",
        message=f"push event{' for ' + pushed if pushed else ''}: sync requested",
        action="gitops.webhook",
        details={"ref": pushed},
        now=now,
    )
    if not row.suspended:
        session.info[_PENDING] = True
    return True, "sync requested" if not row.suspended else "source is suspended: nothing will sync"


def _pushed_ref(body: bytes) -> str | None:
    import json

    try:
        payload: Any = json.loads(body or b"{}")
    except ValueError:
        return None
    ref = payload.get("ref") if isinstance(payload, dict) else None
    return ref if isinstance(ref, str) else None
