"""Finding and row-locking a stack's head; every mutation of a stack goes through `lock_head`.

The head row is the per-stack mutex: writes, LOCK/UNLOCK, rollback and delete all take it (`SELECT
... FOR UPDATE` on PostgreSQL; SQLite's `BEGIN IMMEDIATE` already serializes writers), so a LOCK can
never slip between a write's lock check and its commit.
"""

from __future__ import annotations

from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from xcloudflow.db.base import utcnow
from xcloudflow.db.dialect import insert_ignore
from xcloudflow.errors import Gone, NotFound
from xcloudflow.state.documents import StackRef
from xcloudflow.state.models import StateHead


def _where(org_id: int, ref: StackRef) -> Select[StateHead]:
    return select(StateHead).where(
        StateHead.org_id == org_id,
        StateHead.tool == ref.tool,
        StateHead.project == ref.project,
        StateHead.stack == ref.stack,
    )


def find_head(*, session: Session, org_id: int, ref: StackRef) -> StateHead | None:
    return session.scalars(_where(org_id, ref)).first()


def get_head(*, session: Session, org_id: int, ref: StackRef, allow_deleted: bool = False) -> StateHead:
    head = find_head(session=session, org_id=org_id, ref=ref)
    if head is None:
        raise NotFound(f"no stack {ref}")
    if head.deleted_at is not None and not allow_deleted:
        raise_deleted(head, ref)
    return head


def raise_deleted(head: StateHead, ref: StackRef) -> None:
    assert head.deleted_at is not None
    raise Gone(
        f"stack {ref} was deleted at {head.deleted_at.isoformat()} by {head.deleted_by}; "
        f"restore it with `xcf state restore` (POST /api/v1/stacks/{ref}/restore)",
        details={"deleted_at": head.deleted_at.isoformat()},
    )


def lock_head(
    *, session: Session, org_id: int, ref: StackRef, create: bool, allow_deleted: bool = False
) -> StateHead:
    """The stack's head row, locked for the rest of the transaction; created when asked."""
    head = session.scalars(_where(org_id, ref).with_for_update()).first()
    if head is None and create:
        now = utcnow()
        insert_ignore(
            session,
            StateHead.__table__,  # type: ignore[arg-type]
            {
                "org_id": org_id,
                "tool": ref.tool,
                "project": ref.project,
                "stack": ref.stack,
                "head_version": 0,
                "created_at": now,
                "updated_at": now,
            },
            conflict=["org_id", "tool", "project", "stack"],
        )
        head = session.scalars(_where(org_id, ref).with_for_update()).first()
    if head is None:
        raise NotFound(f"no stack {ref}")
    if head.deleted_at is not None and not allow_deleted:
        raise_deleted(head, ref)
    return head
