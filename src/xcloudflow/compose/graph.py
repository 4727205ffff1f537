"""The plan graph of one environment: one node per module, ordered by declared dependencies and by
the layer order Foundation -> Platform -> Application/Ephemeral -> Config (seed 001 sections 1, 7).

Edges, all as `depends_on` (the DIRECT predecessors of a node, so the orchestrator waits on few keys):
- `dependsOn` between modules of one composition;
- a composition's `dependencies`: each module of it that depends on no sibling waits for the "exit"
  modules of the composition it needs (those no sibling depends on); the others wait through their
  siblings;
- the layer order: a node with no predecessor in its own layer rank waits for the exit nodes of the
  nearest earlier non-empty rank (nodes of that rank that no node of the same rank depends on).
The transitive closure of `depends_on` therefore holds every node of every earlier layer, without
listing them all: a dense "everything before" would be quadratic in the size of the repository.

Cycles are errors whose message prints the cycle ("a -> b -> a", read "depends on") and the file,
line and field of the declaration that closes it. Pure: no files, no database.
"""

from __future__ import annotations

import heapq
import itertools
from collections import defaultdict
from dataclasses import dataclass, field, replace
from functools import cached_property
from typing import TYPE_CHECKING, Any

from xcloudflow.compose.loader import LAYER_RANK, Repository
from xcloudflow.compose.router import Route, route_module
from xcloudflow.compose.yamlsrc import SpecError, SpecIssue

if TYPE_CHECKING:
    from xcloudflow.compose.dsl import Composition

Origin = tuple[str, tuple[str | int, ...]]  # (composition REF, field path) of a declared edge


@dataclass(frozen=True)
class PlanNode:
    key: str  # "<composition metadata.name>/<module name>", unique per environment
    composition: str  # composition REF
    module: str  # module name
    ref: str  # module ref (repo-relative path)
    engine: str
    layer: str
    route: Route
    inputs: dict[str, Any]  # env spec.inputs < module inputs < the environment's composition inputs
    depends_on: tuple[str, ...]  # direct predecessors (declared and layer order), sorted

    def to_json(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "composition": self.composition,
            "module": self.module,
            "ref": self.ref,
            "engine": self.engine,
            "layer": self.layer,
            "route": self.route.to_json(),
            "inputs": self.inputs,
            "depends_on": list(self.depends_on),
        }


@dataclass(frozen=True)
class PlanGraph:
    environment: str
    nodes: dict[str, PlanNode]  # in topological order
    order: list[str]  # topological order, ties broken by key

    @cached_property
    def _dependents(self) -> dict[str, list[str]]:
        direct: dict[str, list[str]] = defaultdict(list)
        for node in self.nodes.values():
            for pred in node.depends_on:
                direct[pred].append(node.key)
        return direct

    def dependents(self, key: str) -> set[str]:
        """Every node that waits, directly or not, for `key`."""
        seen: set[str] = set()
        stack = [key]
        while stack:
            for child in self._dependents.get(stack.pop(), ()):
                if child not in seen:
                    seen.add(child)
                    stack.append(child)
        return seen

    def to_json(self) -> dict[str, Any]:
        return {
            "environment": self.environment,
            "order": self.order,
            "nodes": [n.to_json() for n in self.nodes.values()],
        }


@dataclass
class _Edges:
    preds: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    origins: dict[tuple[str, str], Origin] = field(default_factory=dict)  # (node, pred) -> declaration

    def add(self, node: str, pred: str, origin: Origin | None) -> None:
        if pred not in self.preds[node]:
            self.preds[node].append(pred)
            if origin is not None:
                self.origins[(node, pred)] = origin


def _exits(comp: Composition, name_of: str) -> list[str]:
    """Keys of the modules of `comp` that no sibling depends on (its last modules)."""
    needed = {dep for module in comp.spec.modules for dep in module.depends_on}
    return [f"{name_of}/{m.module_name}" for m in comp.spec.modules if m.module_name not in needed]


def _strongly_connected(nodes: list[str], preds: dict[str, list[str]]) -> list[list[str]]:
    """Tarjan's algorithm, iterative; only components that contain a cycle."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    found: list[list[str]] = []
    counter = 0
    for start in nodes:
        if start in index:
            continue
        work: list[tuple[str, int]] = [(start, 0)]
        while work:
            node, i = work.pop()
            if i == 0:
                index[node] = low[node] = counter
                counter += 1
                stack.append(node)
                on_stack.add(node)
            children = preds.get(node, [])
            if i < len(children):
                work.append((node, i + 1))
                child = children[i]
                if child not in index:
                    work.append((child, 0))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1 or node in preds.get(node, []):
                    found.append(component)
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
    return found


def _cycle_in(component: list[str], preds: dict[str, list[str]]) -> list[str]:
    """One cycle inside a strongly connected component, as [a, b, ..., a] (each depends on the next)."""
    members = set(component)
    path = [min(component)]
    position = {path[0]: 0}
    while True:
        nxt = min(p for p in preds[path[-1]] if p in members)
        if nxt in position:
            cycle = path[position[nxt] :]
            return [*cycle, nxt]
        position[nxt] = len(path)
        path.append(nxt)


def cycle_issues(
    nodes: list[str], edges: _Edges, repo: Repository, *, what: str = "dependency cycle"
) -> list[SpecIssue]:
    issues = []
    for component in _strongly_connected(nodes, edges.preds):
        cycle = _cycle_in(component, edges.preds)
        closing = [(a, b) for a, b in itertools.pairwise(cycle) if (a, b) in edges.origins]
        text = " -> ".join(cycle)
        if closing:
            ref, path = edges.origins[closing[-1]]
            issues.append(repo.issue(ref, path, f"{what}: {text} (read '->' as 'depends on')"))
        else:
            issues.append(SpecIssue("(graph)", None, None, f"{what}: {text}"))
    return issues


def check_cycles(repo: Repository) -> list[SpecIssue]:
    """Cycles between compositions (`dependencies`) and between the modules of each composition
    (`dependsOn`) anywhere in the repository, whatever the environment."""
    comp_edges = _Edges()
    issues: list[SpecIssue] = []
    for ref, comp in repo.compositions.items():
        comp_edges.preds.setdefault(ref, [])
        for j, dependency in enumerate(comp.spec.dependencies):
            comp_edges.add(ref, dependency.ref, (ref, ("spec", "dependencies", j, "ref")))
        module_edges = _Edges()
        name = comp.metadata.name
        for i, module in enumerate(comp.spec.modules):
            key = f"{name}/{module.module_name}"
            module_edges.preds.setdefault(key, [])
            for k, dep in enumerate(module.depends_on):
                module_edges.add(key, f"{name}/{dep}", (ref, ("spec", "modules", i, "dependsOn", k)))
        if any(module_edges.origins):
            issues += cycle_issues(
                sorted(module_edges.preds), module_edges, repo, what="module dependency cycle"
            )
    return cycle_issues(sorted(comp_edges.preds), comp_edges, repo) + issues


def _merge(*layers: dict[str, Any]) -> dict[str, Any]:
    merged: dict[str, Any] = {}
    for layer in layers:
        merged.update(layer)
    return merged


def build_graph(repo: Repository, environment: str) -> PlanGraph:
    """The environment's nodes in a deterministic topological order; SpecError for an unknown
    environment or a cycle."""
    env = repo.environments.get(environment)
    if env is None:
        known = ", ".join(sorted(repo.environments)) or "none"
        raise SpecError(
            [
                SpecIssue(
                    f"envs/{environment}/environment.yaml",
                    None,
                    None,
                    f"unknown environment {environment!r} (known: {known})",
                )
            ]
        )
    edges = _Edges()
    nodes: dict[str, PlanNode] = {}
    rank_of: dict[str, int] = {}
    listed = {item.ref for item in env.spec.compositions}
    for item in env.spec.compositions:
        comp = repo.compositions[item.ref]
        name = comp.metadata.name
        rank = LAYER_RANK[comp.spec.lifecycle]
        for i, module in enumerate(comp.spec.modules):
            key = f"{name}/{module.module_name}"
            route = route_module(repo, item.ref, module.module_name, environment)
            nodes[key] = PlanNode(
                key=key,
                composition=item.ref,
                module=module.module_name,
                ref=module.ref,
                engine=route.engine,
                layer=comp.spec.lifecycle,
                route=route,
                inputs=_merge(env.spec.inputs, module.inputs, item.inputs),
                depends_on=(),
            )
            rank_of[key] = rank
            edges.preds.setdefault(key, [])
            for k, dep in enumerate(module.depends_on):
                edges.add(key, f"{name}/{dep}", (item.ref, ("spec", "modules", i, "dependsOn", k)))
            if module.depends_on:
                continue
            for j, dependency in enumerate(comp.spec.dependencies):
                if dependency.ref not in listed:
                    continue  # the loader reports it; a graph is only built from a valid repository
                target = repo.compositions[dependency.ref]
                for pred in _exits(target, target.metadata.name):
                    edges.add(key, pred, (item.ref, ("spec", "dependencies", j, "ref")))

    # The layer order, through the exit nodes of the nearest earlier non-empty rank.
    by_rank: dict[int, list[str]] = defaultdict(list)
    for key, rank in rank_of.items():
        by_rank[rank].append(key)
    needed_in_rank: set[str] = set()
    for key, preds in edges.preds.items():
        needed_in_rank.update(p for p in preds if rank_of.get(p) == rank_of[key])
    previous_exits: list[str] = []
    for rank in sorted(by_rank):
        members = by_rank[rank]
        for key in members:
            if previous_exits and not any(rank_of.get(p) == rank for p in edges.preds[key]):
                for pred in previous_exits:
                    edges.add(key, pred, None)
        previous_exits = sorted(k for k in members if k not in needed_in_rank)

    issues = cycle_issues(sorted(nodes), edges, repo)
    if issues:
        raise SpecError(issues)
    order = _topological(nodes, edges.preds)
    ordered = {}
    for key in order:
        node = nodes[key]
        ordered[key] = replace(node, depends_on=tuple(sorted(edges.preds[key])))
    return PlanGraph(environment=environment, nodes=ordered, order=order)


def _topological(nodes: dict[str, PlanNode], preds: dict[str, list[str]]) -> list[str]:
    """Kahn's algorithm; among ready nodes the smallest key goes first."""
    waiting = {key: len(preds[key]) for key in nodes}
    children: dict[str, list[str]] = defaultdict(list)
    for key in nodes:
        for pred in preds[key]:
            children[pred].append(key)
    ready = [key for key, count in waiting.items() if count == 0]
    heapq.heapify(ready)
    order: list[str] = []
    while ready:
        key = heapq.heappop(ready)
        order.append(key)
        for child in children[key]:
            waiting[child] -= 1
            if waiting[child] == 0:
                heapq.heappush(ready, child)
    return order
