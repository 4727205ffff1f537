"""Dependency graph reads: blast radius (a recursive CTE in the database) and stack graphs.

An edge `src -> dst` means "src depends on dst". Downstream of a resource is what depends on it,
directly or not (what breaks if it goes): follow edges backwards, from `dst` to `src`. Upstream is
what it depends on: follow edges forwards.

The traversal runs in the database as `WITH RECURSIVE ... UNION` (not UNION ALL): a row is
(resource, depth, edge kind), the union drops repeats and the depth bound stops every path, so a
cycle ends after at most `max_depth` rounds and no round holds more than (resources x 4 kinds) rows.
The same statement runs on SQLite and PostgreSQL. Nothing here writes.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from sqlalchemy import ColumnElement, Integer, and_, case, func, literal, or_, select
from sqlalchemy.orm import Session

from xcloudflow.errors import Invalid, NotFound
from xcloudflow.inventory.models import DependencyEdge, ResourceCurrent
from xcloudflow.inventory.queries import org_resources
from xcloudflow.inventory.schemas import (
    BlastRadius,
    BlastRadiusNode,
    Direction,
    Graph,
    GraphEdge,
    GraphNode,
)

MAX_DEPTH = 50
EDGE_KINDS = ("depends_on", "parent", "provider", "ref")  # alphabetical: the tie-break order
MAX_GRAPH_NODES = 10_000


def blast_radius(
    *, session: Session, org_id: int, uid: uuid.UUID, direction: Direction = "downstream", max_depth: int = 10
) -> BlastRadius:
    """The root and every live resource reachable from it, each at its shortest distance.

    `kind` is the kind of the last edge of a shortest path to the resource (alphabetically first when
    shortest paths arrive by edges of several kinds).
    """
    if direction not in ("downstream", "upstream"):
        raise Invalid("direction is downstream or upstream", details={"field": "direction"})
    if not 1 <= max_depth <= MAX_DEPTH:
        raise Invalid(f"max_depth must be between 1 and {MAX_DEPTH}", details={"field": "max_depth"})
    R, E = ResourceCurrent, DependencyEdge
    if session.get(R, (org_id, uid)) is None:
        raise NotFound(f"no resource {uid}")
    here, there = (E.dst_uid, E.src_uid) if direction == "downstream" else (E.src_uid, E.dst_uid)
    # Rows carry depth * 10 + the edge kind's rank, so one MIN per resource gives both its shortest
    # depth and, among shortest arrivals, the alphabetically first kind (no second pass over `reach`).
    rank = case({k: i + 1 for i, k in enumerate(EDGE_KINDS)}, value=E.kind, else_=len(EDGE_KINDS) + 1)
    reach = (
        select(
            R.stable_uid.label("uid"), literal(0, Integer).label("depth"), literal(0, Integer).label("key")
        )
        .where(R.org_id == org_id, R.stable_uid == uid)
        .cte("reach", recursive=True)
    )
    step = (
        select(
            there.label("uid"),
            (reach.c.depth + 1).label("depth"),
            ((reach.c.depth + 1) * 10 + rank).label("key"),
        )
        .select_from(reach)
        .join(E, and_(E.org_id == org_id, here == reach.c.uid))
        .where(reach.c.depth < max_depth)
    )
    reach = reach.union(step)
    first = select(reach.c.uid, func.min(reach.c.key).label("key")).group_by(reach.c.uid).subquery("first")
    live: ColumnElement[bool] = or_(R.deleted_at.is_(None), first.c.key == 0)
    # Columns, not entities: loading every reached row's attributes would cost more than the walk.
    rows = session.execute(
        select(first.c.key, R.stable_uid, R.addr, R.tool, R.project, R.stack, R.resource_type)
        .join(R, and_(R.org_id == org_id, R.stable_uid == first.c.uid))
        .where(live)
        .order_by(first.c.key // 10, R.stack, R.addr, R.stable_uid)
    ).all()
    return BlastRadius(
        root=uid,
        direction=direction,
        max_depth=max_depth,
        items=[
            BlastRadiusNode(
                stable_uid=uid_,
                depth=key // 10,
                kind=_kind_of(key),
                addr=addr,
                tool=tool,
                project=project,
                stack=stack,
                type=rtype,
            )
            for key, uid_, addr, tool, project, stack, rtype in rows
        ],
    )


def _kind_of(key: int) -> str | None:
    rank = key % 10
    return EDGE_KINDS[rank - 1] if 1 <= rank <= len(EDGE_KINDS) else None


def _node(r: ResourceCurrent, *, external: bool) -> GraphNode:
    return GraphNode(
        stable_uid=r.stable_uid,
        addr=r.addr,
        tool=r.tool,
        project=r.project,
        stack=r.stack,
        type=r.resource_type,
        kind=r.kind,
        external=external,
    )


def stack_graph(
    *,
    session: Session,
    org_id: int,
    stacks: Sequence[str] = (),
    project: str | None = None,
    tool: str | None = None,
) -> Graph:
    """Live resources of the selected stacks, the edges touching them, and the far ends of
    cross-stack edges as `external` nodes."""
    R, E = ResourceCurrent, DependencyEdge
    where: list[ColumnElement[bool]] = [R.org_id == org_id, R.deleted_at.is_(None)]
    if stacks:
        where.append(R.stack.in_(sorted(set(stacks))))
    if project is not None:
        where.append(R.project == project)
    if tool is not None:
        where.append(R.tool == tool)
    count = session.scalar(select(func.count()).select_from(R).where(*where)) or 0
    if count > MAX_GRAPH_NODES:
        raise Invalid(
            f"the selection has {count} resources (more than {MAX_GRAPH_NODES}): "
            "narrow it with stack, project or tool",
            details={"field": "stack"},
        )
    selected = {r.stable_uid: r for r in session.scalars(select(R).where(*where))}
    ids = select(R.stable_uid).where(*where)
    edge_rows = session.execute(
        select(E.src_uid, E.dst_uid, E.kind).where(
            E.org_id == org_id, or_(E.src_uid.in_(ids), E.dst_uid.in_(ids))
        )
    ).all()
    outside = {u for s, d, _ in edge_rows for u in (s, d) if u not in selected}
    external = {
        u: r
        for u, r in org_resources(session=session, org_id=org_id, uids=list(outside)).items()
        if r.deleted_at is None
    }
    known = selected.keys() | external.keys()
    nodes = [_node(r, external=False) for r in selected.values()]
    nodes += [_node(r, external=True) for r in external.values()]
    nodes.sort(key=lambda n: (n.external, n.tool, n.project, n.stack, n.addr, str(n.stable_uid)))
    edges = sorted(
        (GraphEdge(src=s, dst=d, kind=k) for s, d, k in edge_rows if s in known and d in known),
        key=lambda e: (str(e.src), str(e.dst), e.kind),
    )
    return Graph(nodes=nodes, edges=edges)


def _dot_string(value: str) -> str:
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped}"'


def _stack_label(n: GraphNode) -> str:
    return f"{n.tool}/{n.project}/{n.stack}"


def to_dot(graph: Graph) -> str:
    """Graphviz: one cluster per stack, nodes labelled by address, edges by kind."""
    lines = ["digraph inventory {", "  rankdir=LR;", '  node [shape=box, fontname="Helvetica"];']
    clusters: dict[str, list[GraphNode]] = {}
    for n in graph.nodes:
        clusters.setdefault(_stack_label(n), []).append(n)
    for i, (label, members) in enumerate(clusters.items()):
        lines.append(f"  subgraph cluster_{i} {{")
        lines.append(f"    label={_dot_string(label)};")
        for n in members:
            style = ", style=dashed" if n.external else ""
            lines.append(f"    {_dot_string(str(n.stable_uid))} [label={_dot_string(n.addr)}{style}];")
        lines.append("  }")
    for e in graph.edges:
        lines.append(
            f"  {_dot_string(str(e.src))} -> {_dot_string(str(e.dst))} [label={_dot_string(e.kind)}];"
        )
    lines.append("}")
    return "\n".join(lines) + "\n"


def _mermaid_id(uid: uuid.UUID) -> str:
    return f"r{uid.hex}"


def _mermaid_label(value: str) -> str:
    # Inside a quoted label Mermaid reads `#name;` as an entity: escape `#` first, then quotes.
    out = "".join({"#": "#35;", '"': "#quot;", "<": "#lt;", ">": "#gt;"}.get(c, c) for c in value)
    return f'"{out}"'


def to_mermaid(graph: Graph) -> str:
    """Mermaid flowchart: ids `r<uid hex>`, labels = address (prefixed by the stack when external)."""
    lines = ["graph LR"]
    for n in graph.nodes:
        label = f"{_stack_label(n)}: {n.addr}" if n.external else n.addr
        lines.append(f"  {_mermaid_id(n.stable_uid)}[{_mermaid_label(label)}]")
    for e in graph.edges:
        lines.append(f"  {_mermaid_id(e.src)} -->|{e.kind}| {_mermaid_id(e.dst)}")
    externals = [_mermaid_id(n.stable_uid) for n in graph.nodes if n.external]
    if externals:
        lines.append("  classDef external stroke-dasharray: 5 5")
        lines.append(f"  class {','.join(externals)} external")
    return "\n".join(lines) + "\n"
