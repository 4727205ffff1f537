"""Replaying every stored version gives exactly the incrementally built tables (hypothesis)."""

from __future__ import annotations

import uuid
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from xcloudflow.db import Database
from xcloudflow.inventory import service as inventory
from xcloudflow.inventory.models import DependencyEdge, ResourceCurrent, ResourceEvent
from xcloudflow.keys.keyring import Keyring

NAMES = ["a", "b", "c", "d", "e"]

# One version: which resources exist, each with an input value, an optional ARN-style global id and
# dependencies on other present resources.
resource = st.fixed_dictionaries(
    {
        "value": st.sampled_from(["x", "y", "z", "p@ss"]),
        "global": st.booleans(),
        "deps": st.lists(st.sampled_from(NAMES), max_size=2, unique=True),
        "module": st.sampled_from([None, "module.m"]),
    }
)
version = st.dictionaries(st.sampled_from(NAMES), resource, max_size=5)
first = st.dictionaries(st.sampled_from(NAMES), resource, min_size=1, max_size=5)
history = st.tuples(first, st.lists(version, max_size=4)).map(lambda t: [t[0], *t[1]])


def _uuid(name: str) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_DNS, name))


def tf_doc(serial: int, spec: dict[str, dict[str, Any]]) -> dict[str, Any]:
    resources = []
    for name, r in sorted(spec.items()):
        attrs: dict[str, Any] = {"id": _uuid(name), "input": r["value"], "password": r["value"]}
        if r["deps"]:
            attrs["peer"] = _uuid(r["deps"][0])  # a ref edge, whether or not the peer exists yet
        if r["global"]:
            attrs["arn"] = f"arn:aws:ec2:eu-west-1:1:thing/{name}"
        res: dict[str, Any] = {
            "mode": "managed",
            "type": "aws_thing",
            "name": name,
            "provider": 'provider["registry.terraform.io/hashicorp/aws"]',
            "instances": [
                {"attributes": attrs, "dependencies": [f"aws_thing.{d}" for d in r["deps"] if d in spec]}
            ],
        }
        if r["module"]:
            res["module"] = r["module"]
        resources.append(res)
    return {"version": 4, "serial": serial, "lineage": "l", "resources": resources}


def snapshot(db: Database) -> tuple[list[Any], list[Any], list[Any]]:
    with db.read() as session:
        events = sorted(
            (
                e.id,
                e.at,
                e.run_id,
                e.stable_uid,
                e.action,
                e.addr,
                repr(e.patch_json),
                e.before_hash,
                e.after_hash,
            )
            for e in session.scalars(select(ResourceEvent))
        )
        current = sorted(
            (r.stable_uid, r.addr, r.attrs_hash, repr(r.attrs), r.deleted_at is None, r.state_version)
            for r in session.scalars(select(ResourceCurrent))
        )
        edges = sorted((e.src_uid, e.dst_uid, e.kind) for e in session.scalars(select(DependencyEdge)))
    assert current, "every example writes at least one stack"
    return events, current, edges


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(history=history)
def test_rebuild_equals_incremental(history, db, settings_, put_state, consume) -> None:  # type: ignore[no-untyped-def]
    keyring = Keyring.from_settings(settings_, create=False)
    with db.write() as session:  # hypothesis reuses the fixture: start each example from empty
        inventory.rebuild(session=session, keyring=keyring, org_id=1)
    stack = f"h{abs(hash(repr(history))) % 10**8}"
    for serial, spec in enumerate(history, start=1):
        put_state(tf_doc(serial, spec), stack=stack)
        consume()  # incremental, one version at a time
    incremental = snapshot(db)
    with db.write() as session:
        inventory.rebuild(session=session, keyring=keyring, org_id=1)
    assert snapshot(db) == incremental
