"""Policy checks of a planned ChangeSet: the Rego input document per node and the verdicts.

The policies are the ones stored with the ChangeSet (the repository at its commit), compiled once per
ChangeSet in this process. A node without changes is not checked: a policy cannot block nothing.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any

from xcloudflow.compose.models import ComposeChangeSet, ComposeNode
from xcloudflow.compose.planner import policy_sets
from xcloudflow.policy.rego import PolicyBundle

_CACHE: OrderedDict[str, PolicyBundle] = OrderedDict()
_LOCK = threading.Lock()
_CACHE_SIZE = 32


def _bundle(cs: ComposeChangeSet) -> PolicyBundle:
    key = f"{cs.id}:{cs.bundle_sha256}"
    with _LOCK:
        found = _CACHE.get(key)
        if found is not None:
            _CACHE.move_to_end(key)
            return found
    sets = policy_sets({"policySets": cs.context.get("policy_sets") or []})
    bundle = PolicyBundle.compile(cs.context.get("policy_files") or {}, sets)
    with _LOCK:
        _CACHE[key] = bundle
        while len(_CACHE) > _CACHE_SIZE:
            _CACHE.popitem(last=False)
    return bundle


def monthly_cost(cs: ComposeChangeSet, plan: dict[str, Any]) -> float:
    """Estimated monthly cost the node adds: the repository's per-type costs times created resources."""
    costs = cs.context.get("costs") or {}
    total = 0.0
    for change in plan.get("resource_changes") or []:
        actions = change.get("actions") or []
        price = float(costs.get(change.get("type") or "", 0.0))
        if "create" in actions:
            total += price
        elif "delete" in actions:
            total -= price
    return round(total, 2)


def summary(nodes: list[ComposeNode]) -> dict[str, int]:
    counts = {"add": 0, "change": 0, "destroy": 0, "nodes": len(nodes), "with_changes": 0}
    for node in nodes:
        plan = node.plan or {}
        if plan.get("has_changes"):
            counts["with_changes"] += 1
        for key in ("add", "change", "destroy"):
            counts[key] += int((plan.get("summary") or {}).get(key, 0))
    return counts


def _environment(cs: ComposeChangeSet) -> dict[str, Any]:
    """The environment document without its composition list: a policy judges one node, and the list of
    a large environment (1,000 compositions) would make every evaluation pay for converting it."""
    env = dict(cs.context.get("environment") or {})
    spec = {k: v for k, v in (env.get("spec") or {}).items() if k != "compositions"}
    return {**env, "spec": spec}


def policy_input(cs: ComposeChangeSet, node: ComposeNode, totals: dict[str, int]) -> dict[str, Any]:
    plan = node.plan or {}
    return {
        "changeset": {
            "id": str(cs.id),
            "environment": cs.environment,
            "commit": cs.commit,
            "kind": cs.kind,
            "summary": totals,
        },
        "node": {
            "key": node.key,
            "composition": node.composition,
            "module": node.module,
            "ref": node.ref,
            "engine": node.engine,
            "layer": node.layer,
            "route": node.route,
            "inputs": node.inputs,
            "monthly_cost": monthly_cost(cs, plan),
        },
        "plan": plan,
        "composition": (cs.context.get("compositions") or {}).get(node.composition) or {},
        "environment": _environment(cs),
        "budget": cs.context.get("budget") or {},
    }


def evaluate(cs: ComposeChangeSet, nodes: list[ComposeNode]) -> bool:
    """Check every node with changes; store the outcomes on the nodes; True when a mandatory one fails."""
    totals = summary(nodes)
    bundle = _bundle(cs)
    blocking = False
    for node in nodes:
        if not (node.plan or {}).get("has_changes"):
            node.policy = []
            continue
        outcomes = bundle.evaluate(policy_input(cs, node, totals))
        node.policy = [o.to_json() for o in outcomes if o.deny or o.warn]
        blocking = blocking or any(o.blocking for o in outcomes)
    cs.summary = totals
    return blocking
