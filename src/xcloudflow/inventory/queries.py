"""Read SQL of the inventory: resources, their history, the event log and parse errors.

Every function is scoped to one organization (`org_id` from the caller's principal), takes keyword
arguments only and never writes: the route owns the (read) transaction. Listings use keyset cursors
over a total order, so pages stay correct while the consumer writes. Graph traversal is in `graph.py`.

The attribute filter (`attr=tags.env:prod`) uses SQLAlchemy's portable JSON path indexing: it
renders `json_extract` on SQLite and `#>>` on PostgreSQL. Values are compared as text, so numbers
match their decimal form (`attr=port:443`); booleans are not portable (`1` on SQLite, `true` on
PostgreSQL) and are best matched by their key's presence elsewhere.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import ColumnElement, Select, String, cast, func, select, tuple_
from sqlalchemy.orm import Session

from xcloudflow.db.dialect import is_postgres
from xcloudflow.db.pagination import check_limit, decode_cursor, page_of
from xcloudflow.errors import Invalid, NotFound
from xcloudflow.inventory.models import (
    ACTIONS,
    DependencyEdge,
    InventoryError,
    ResourceCurrent,
    ResourceEvent,
)
from xcloudflow.inventory.schemas import (
    EventCount,
    EventOut,
    EventPage,
    InventoryErrorOut,
    LinkedResource,
    ResourceDetail,
    ResourceOut,
    ResourcePage,
)
from xcloudflow.state import service as state

MAX_ATTR_CONDITIONS = 10


def parse_uid(value: str, *, field: str = "uid") -> uuid.UUID:
    try:
        return uuid.UUID(value)
    except ValueError as exc:
        raise Invalid(f"{field} {value[:60]!r} is not a UUID", details={"field": field}) from exc


def _utc(value: datetime | None) -> datetime | None:
    """Query-string datetimes without an offset are taken as UTC."""
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=UTC)


def parse_attr_condition(raw: str) -> tuple[tuple[str | int, ...], str]:
    """`tags.env:prod` -> (("tags", "env"), "prod"); digit steps index lists (`ingress.0.port:443`)."""
    path, sep, value = raw.partition(":")
    steps = path.split(".")
    if not sep or not path or any(not s for s in steps):
        raise Invalid(
            f"attr {raw[:80]!r} is not PATH:VALUE (e.g. attr=tags.env:prod)", details={"field": "attr"}
        )
    return tuple(int(s) if s.isdigit() else s for s in steps), value


def _attr_filters(conditions: Sequence[str]) -> list[ColumnElement[bool]]:
    if len(conditions) > MAX_ATTR_CONDITIONS:
        raise Invalid(f"at most {MAX_ATTR_CONDITIONS} attr conditions", details={"field": "attr"})
    out: list[ColumnElement[bool]] = []
    for raw in conditions:
        path, value = parse_attr_condition(raw)
        # CAST to text on both databases: json_extract returns numbers as numbers on SQLite.
        out.append(cast(ResourceCurrent.attrs[path].as_string(), String) == value)
    return out


def _resource_out(r: ResourceCurrent) -> ResourceOut:
    return ResourceOut(
        stable_uid=r.stable_uid,
        tool=r.tool,
        project=r.project,
        stack=r.stack,
        kind=r.kind,
        provider=r.provider,
        type=r.resource_type,
        addr=r.addr,
        cloud=r.cloud,
        region=r.region,
        global_id=r.global_id,
        updated_at=r.updated_at,
        deleted_at=r.deleted_at,
    )


def list_resources(
    *,
    session: Session,
    org_id: int,
    tool: str | None = None,
    project: str | None = None,
    stack: str | None = None,
    provider: str | None = None,
    resource_type: str | None = None,
    cloud: str | None = None,
    region: str | None = None,
    kind: str | None = None,
    q: str | None = None,
    attr: Sequence[str] = (),
    include_deleted: bool = False,
    cursor: str | None = None,
    limit: int = 100,
) -> ResourcePage:
    check_limit(limit)
    R = ResourceCurrent
    stmt = select(R).where(R.org_id == org_id)
    for column, value in (
        (R.tool, tool),
        (R.project, project),
        (R.stack, stack),
        (R.provider, provider),
        (R.resource_type, resource_type),
        (R.cloud, cloud),
        (R.region, region),
        (R.kind, kind),
    ):
        if value is not None:
            stmt = stmt.where(column == value)
    if q:
        stmt = stmt.where(func.lower(R.addr).contains(q.lower(), autoescape=True))
    for condition in _attr_filters(attr):
        stmt = stmt.where(condition)
    if not include_deleted:
        stmt = stmt.where(R.deleted_at.is_(None))
    order = (R.tool, R.project, R.stack, R.addr, R.stable_uid)
    after = decode_cursor(cursor)
    if after is not None:
        try:
            t, p, s, a, u = after
            key = (str(t), str(p), str(s), str(a), uuid.UUID(str(u)))
        except (TypeError, ValueError) as exc:
            raise Invalid("cursor is not one this server handed out", details={"field": "cursor"}) from exc
        stmt = stmt.where(tuple_(*order) > tuple_(*key))
    rows, next_cursor = page_of(
        list(session.scalars(stmt.order_by(*order).limit(limit + 1))),
        limit,
        lambda r: [r.tool, r.project, r.stack, r.addr, str(r.stable_uid)],
    )
    return ResourcePage(items=[_resource_out(r) for r in rows], next_cursor=next_cursor)


def _get_resource(session: Session, org_id: int, uid: uuid.UUID) -> ResourceCurrent:
    row = session.get(ResourceCurrent, (org_id, uid))
    if row is None:
        raise NotFound(f"no resource {uid}")
    return row


def _linked(session: Session, org_id: int, pairs: list[tuple[uuid.UUID, str]]) -> list[LinkedResource]:
    found = org_resources(session=session, org_id=org_id, uids=[u for u, _ in pairs])
    out = []
    for uid, kind in pairs:
        r = found.get(uid)
        out.append(
            LinkedResource(
                stable_uid=uid,
                kind=kind,
                addr=r.addr if r else None,
                tool=r.tool if r else None,
                project=r.project if r else None,
                stack=r.stack if r else None,
                type=r.resource_type if r else None,
            )
        )
    return sorted(out, key=lambda link: (link.addr or "", link.kind, str(link.stable_uid)))


def show_resource(*, session: Session, org_id: int, uid: uuid.UUID) -> ResourceDetail:
    r = _get_resource(session, org_id, uid)
    E = DependencyEdge
    depends_on = session.execute(select(E.dst_uid, E.kind).where(E.org_id == org_id, E.src_uid == uid)).all()
    dependents = session.execute(select(E.src_uid, E.kind).where(E.org_id == org_id, E.dst_uid == uid)).all()
    return ResourceDetail(
        **_resource_out(r).model_dump(),
        native_id=r.native_id,
        attrs=r.attrs,
        attrs_hash=r.attrs_hash,
        state_version=r.state_version,
        last_run_id=r.last_run_id,
        created_at=r.created_at,
        depends_on=_linked(session, org_id, [(u, k) for u, k in depends_on]),
        dependents=_linked(session, org_id, [(u, k) for u, k in dependents]),
    )


def _event_out(e: ResourceEvent) -> EventOut:
    return EventOut(
        id=e.id,
        run_id=e.run_id,
        stable_uid=e.stable_uid,
        action=e.action,
        addr=e.addr,
        tool=e.tool,
        project=e.project,
        stack=e.stack,
        provider=e.provider,
        type=e.resource_type,
        cloud=e.cloud,
        region=e.region,
        state_version=e.state_version,
        at=e.at,
        before_hash=e.before_hash,
        after_hash=e.after_hash,
        patch_json=e.patch_json,
    )


def _event_page(session: Session, stmt: Select[ResourceEvent], cursor: str | None, limit: int) -> EventPage:
    """Newest first; events of one version share `at`, so (at, state_version, id) breaks the ties."""
    E = ResourceEvent
    order = (E.at, E.state_version, E.id)
    after = decode_cursor(cursor)
    if after is not None:
        try:
            at, version, event_id = after
            key = (datetime.fromisoformat(str(at)), int(version), uuid.UUID(str(event_id)))
        except (TypeError, ValueError) as exc:
            raise Invalid("cursor is not one this server handed out", details={"field": "cursor"}) from exc
        stmt = stmt.where(tuple_(*order) < tuple_(*key))
    rows, next_cursor = page_of(
        list(session.scalars(stmt.order_by(*(c.desc() for c in order)).limit(limit + 1))),
        limit,
        lambda e: [e.at.isoformat(), e.state_version, str(e.id)],
    )
    return EventPage(items=[_event_out(e) for e in rows], next_cursor=next_cursor)


def resource_history(
    *, session: Session, org_id: int, uid: uuid.UUID, cursor: str | None = None, limit: int = 100
) -> EventPage:
    check_limit(limit)
    _get_resource(session, org_id, uid)
    stmt = select(ResourceEvent).where(ResourceEvent.org_id == org_id, ResourceEvent.stable_uid == uid)
    return _event_page(session, stmt, cursor, limit)


def _check_action(action: str | None) -> None:
    if action is not None and action not in ACTIONS:
        raise Invalid(
            f"unknown action {action!r}: expected one of {', '.join(ACTIONS)}", details={"field": "action"}
        )


def _event_filters(
    *,
    org_id: int,
    since: datetime | None,
    until: datetime | None,
    tool: str | None,
    project: str | None,
    stack: str | None,
) -> list[ColumnElement[bool]]:
    E = ResourceEvent
    out: list[ColumnElement[bool]] = [E.org_id == org_id]
    since, until = _utc(since), _utc(until)
    if since is not None:
        out.append(E.at >= since)
    if until is not None:
        out.append(E.at < until)
    for column, value in ((E.tool, tool), (E.project, project), (E.stack, stack)):
        if value is not None:
            out.append(column == value)
    return out


def list_events(
    *,
    session: Session,
    org_id: int,
    since: datetime | None = None,
    until: datetime | None = None,
    action: str | None = None,
    tool: str | None = None,
    project: str | None = None,
    stack: str | None = None,
    resource_type: str | None = None,
    run_id: uuid.UUID | None = None,
    cursor: str | None = None,
    limit: int = 100,
) -> EventPage:
    check_limit(limit)
    _check_action(action)
    E = ResourceEvent
    stmt = select(E).where(
        *_event_filters(org_id=org_id, since=since, until=until, tool=tool, project=project, stack=stack)
    )
    if action is not None:
        stmt = stmt.where(E.action == action)
    if resource_type is not None:
        stmt = stmt.where(E.resource_type == resource_type)
    if run_id is not None:
        stmt = stmt.where(E.run_id == run_id)
    return _event_page(session, stmt, cursor, limit)


def event_summary(
    *,
    session: Session,
    org_id: int,
    since: datetime | None = None,
    until: datetime | None = None,
    tool: str | None = None,
    project: str | None = None,
    stack: str | None = None,
) -> list[EventCount]:
    """Events per UTC day and action, oldest day first (for charts)."""
    E = ResourceEvent
    # The one dialect branch of this module: SQLite stores UTC timestamps as text, so date() is the
    # UTC day; PostgreSQL's date() would use the session time zone, so convert to UTC first.
    day: ColumnElement[Any] = (
        func.to_char(func.timezone("UTC", E.at), "YYYY-MM-DD") if is_postgres(session) else func.date(E.at)
    )
    day = day.label("day")
    rows = session.execute(
        select(day, E.action, func.count().label("n"))
        .where(
            *_event_filters(org_id=org_id, since=since, until=until, tool=tool, project=project, stack=stack)
        )
        .group_by(day, E.action)
        .order_by(day, E.action)
    ).all()
    return [EventCount(day=str(d), action=a, count=int(n)) for d, a, n in rows]


def list_errors(
    *,
    session: Session,
    org_id: int,
    tool: str | None = None,
    project: str | None = None,
    stack: str | None = None,
    limit: int = 100,
) -> list[InventoryErrorOut]:
    """Versions the consumer could not read, newest first, named by their stack."""
    check_limit(limit)
    I = InventoryError  # noqa: E741 - the model, as R and E elsewhere
    if session.scalar(select(I.id).where(I.org_id == org_id).limit(1)) is None:
        return []
    # Stack names live in the state domain; errors are rare, so one pass over its version list is
    # cheaper than another copy of the names here.
    names: dict[int, tuple[str, str, str]] = {
        v.head_id: (v.tool, v.project, v.stack) for v in state.stored_versions(session=session, org_id=org_id)
    }
    heads = [
        h
        for h, (t, p, s) in names.items()
        if (tool is None or t == tool) and (project is None or p == project) and (stack is None or s == stack)
    ]
    stmt = select(I).where(I.org_id == org_id)
    if tool is not None or project is not None or stack is not None:
        stmt = stmt.where(I.head_id.in_(heads))
    rows = session.scalars(stmt.order_by(I.at.desc(), I.id.desc()).limit(limit))
    out = []
    for e in rows:
        t, p, s = names.get(e.head_id, (None, None, None))
        out.append(
            InventoryErrorOut(
                tool=t, project=p, stack=s, state_version=e.state_version, message=e.message, at=e.at
            )
        )
    return out


def org_resources(
    *, session: Session, org_id: int, uids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, ResourceCurrent]:
    """Rows of these resources (live or deleted), in chunks that stay under bind-parameter limits."""
    R = ResourceCurrent
    ordered = sorted(set(uids))
    found: dict[uuid.UUID, ResourceCurrent] = {}
    for i in range(0, len(ordered), 500):
        found.update(
            (r.stable_uid, r)
            for r in session.scalars(
                select(R).where(R.org_id == org_id, R.stable_uid.in_(ordered[i : i + 500]))
            )
        )
    return found
