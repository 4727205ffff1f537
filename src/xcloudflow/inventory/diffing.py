"""Resource events between two snapshots of a stack. Pure functions.

A snapshot maps stable_uid -> `Snapshot`. The JSON document each resource's patches apply to is
`{"address": ..., "attributes": {...}}` (redacted): a create's patch builds it from `{}`, an update's
patch changes it (a moved resource is an update whose patch replaces `/address`), a delete's patch
empties it. Applying a resource's patches in order from `{}` gives its current document.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import jsonpatch


@dataclass
class Snapshot:
    addr: str
    attrs: dict[str, Any]
    attrs_hash: str


@dataclass
class EventDraft:
    stable_uid: uuid.UUID
    action: str
    addr: str
    patch: list[dict[str, Any]]
    before_hash: str | None
    after_hash: str | None


def document(snap: Snapshot | None) -> dict[str, Any]:
    return {} if snap is None else {"address": snap.addr, "attributes": snap.attrs}


def make_patch(before: dict[str, Any], after: dict[str, Any]) -> list[dict[str, Any]]:
    # Creates and deletes are the common bulk case: their patches are known without a diff.
    if not before:
        return [{"op": "add", "path": f"/{k}", "value": v} for k, v in after.items()]
    if not after:
        return [{"op": "remove", "path": f"/{k}"} for k in before]
    ops: list[dict[str, Any]] = jsonpatch.make_patch(before, after).patch
    return ops


def diff(old: dict[uuid.UUID, Snapshot], new: dict[uuid.UUID, Snapshot]) -> list[EventDraft]:
    """Events turning `old` into `new`, in a stable order (deletes, then updates, then creates)."""
    events: list[EventDraft] = []
    for uid in sorted(old.keys() - new.keys(), key=lambda u: old[u].addr):
        snap = old[uid]
        events.append(
            EventDraft(uid, "delete", snap.addr, make_patch(document(snap), {}), snap.attrs_hash, None)
        )
    for uid in sorted(old.keys() & new.keys(), key=lambda u: new[u].addr):
        before, after = old[uid], new[uid]
        if before.attrs_hash == after.attrs_hash and before.addr == after.addr:
            continue
        events.append(
            EventDraft(
                uid,
                "update",
                after.addr,
                make_patch(document(before), document(after)),
                before.attrs_hash,
                after.attrs_hash,
            )
        )
    for uid in sorted(new.keys() - old.keys(), key=lambda u: new[u].addr):
        snap = new[uid]
        events.append(
            EventDraft(uid, "create", snap.addr, make_patch({}, document(snap)), None, snap.attrs_hash)
        )
    return events


def replay(patches: list[list[dict[str, Any]]]) -> dict[str, Any]:
    doc: dict[str, Any] = {}
    for patch in patches:
        doc = jsonpatch.apply_patch(doc, patch)
    return doc
