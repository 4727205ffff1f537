"""Blast radius (recursive CTE, both directions, cycles) and graph export (json, dot, mermaid)."""

from __future__ import annotations

import re
from typing import Any

from fastapi.testclient import TestClient

from tests.inventory.test_api import apps_dev, data, seed, tf, uids


def radius(client: TestClient, uid: str, **params: Any) -> list[tuple[str, int, str | None]]:
    resp = client.get(f"/api/v1/graph/blast-radius/{uid}", params=params)
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["root"] == uid and body["items"][0]["stable_uid"] == uid
    return [(i["addr"], i["depth"], i["kind"]) for i in body["items"]]


def test_blast_radius_downstream_and_upstream(reader: TestClient, put_state, consume) -> None:  # type: ignore[no-untyped-def]
    seed(put_state, consume)
    ids = uids(reader)
    down = radius(reader, ids["module.net.aws_vpc.main"])
    assert sorted(down, key=lambda r: (r[1], r[0])) == [
        ("module.net.aws_vpc.main", 0, None),
        ("aws_security_group.web", 1, "ref"),  # another stack: cross-stack blast radius
        ('aws_subnet.private["a"]', 1, "depends_on"),  # by depends_on and ref: first kind wins
        ('aws_subnet.private["b"]', 1, "depends_on"),
        ("aws_instance.web[0]", 2, "depends_on"),
        ("aws_instance.web[1]", 2, "depends_on"),
    ]
    assert [d for _, d, _ in down] == sorted(d for _, d, _ in down)  # ordered by depth
    assert radius(reader, ids["module.net.aws_vpc.main"], max_depth=1) == [r for r in down if r[1] <= 1]
    up = radius(reader, ids["aws_instance.web[0]"], direction="upstream")
    assert sorted(up, key=lambda r: (r[1], r[0])) == [
        ("aws_instance.web[0]", 0, None),
        ('aws_subnet.private["a"]', 1, "depends_on"),
        ('aws_subnet.private["b"]', 1, "depends_on"),
        ("module.net.aws_vpc.main", 2, "depends_on"),
    ]
    assert radius(reader, ids["aws_instance.web[0]"]) == [("aws_instance.web[0]", 0, None)]
    sg_up = radius(reader, ids["aws_security_group.web"], direction="upstream")
    assert sg_up == [("aws_security_group.web", 0, None), ("module.net.aws_vpc.main", 1, "ref")]


def test_chain_depths(reader: TestClient, put_state, consume) -> None:  # type: ignore[no-untyped-def]
    seed(put_state, consume)
    ids = uids(reader, stack="dev")
    a, c = ids["terraform_data.a"], ids["terraform_data.c"]
    assert radius(reader, a) == [
        ("terraform_data.a", 0, None),
        ("terraform_data.b", 1, "depends_on"),
        ("terraform_data.c", 2, "depends_on"),
    ]
    assert radius(reader, a, max_depth=1) == [
        ("terraform_data.a", 0, None),
        ("terraform_data.b", 1, "depends_on"),
    ]
    assert radius(reader, c, direction="upstream") == [
        ("terraform_data.c", 0, None),
        ("terraform_data.b", 1, "depends_on"),
        ("terraform_data.a", 2, "depends_on"),
    ]
    assert radius(reader, c) == [("terraform_data.c", 0, None)]
    # c goes: it leaves the radius (its edges went with it).
    put_state(apps_dev(serial=2, with_c=False), project="apps", stack="dev")
    consume()
    assert radius(reader, a) == [("terraform_data.a", 0, None), ("terraform_data.b", 1, "depends_on")]


def test_cycles_terminate(reader: TestClient, put_state, consume) -> None:  # type: ignore[no-untyped-def]
    seed(put_state, consume)
    ids = uids(reader, stack="dev")
    x = ids["terraform_data.x"]
    for direction in ("downstream", "upstream"):
        assert radius(reader, x, direction=direction, max_depth=50) == [
            ("terraform_data.x", 0, None),
            ("terraform_data.y", 1, "depends_on"),
        ]
    # A longer ring p -> q -> r -> s -> p: every member once, at its distance around the ring.
    ring = [
        data(n, [f"terraform_data.{m}"], 10 + i) for i, (n, m) in enumerate(zip("pqrs", "qrsp", strict=True))
    ]
    put_state(tf(1, ring, lineage="ring"), project="apps", stack="ring")
    consume()
    ring_ids = uids(reader, stack="ring")
    assert radius(reader, ring_ids["terraform_data.p"], max_depth=50) == [
        ("terraform_data.p", 0, None),
        ("terraform_data.s", 1, "depends_on"),
        ("terraform_data.r", 2, "depends_on"),
        ("terraform_data.q", 3, "depends_on"),
    ]


def test_blast_radius_bad_input(reader: TestClient, put_state, consume) -> None:  # type: ignore[no-untyped-def]
    seed(put_state, consume)
    uid = uids(reader)["terraform_data.a"]
    for params, status in [
        ({"max_depth": 0}, 400),
        ({"max_depth": 51}, 400),
        ({"max_depth": 50}, 200),
        ({"direction": "sideways"}, 422),
        ({"depth": 3}, 400),
    ]:
        assert reader.get(f"/api/v1/graph/blast-radius/{uid}", params=params).status_code == status, params
    missing = reader.get("/api/v1/graph/blast-radius/00000000-0000-0000-0000-000000000000")
    assert missing.status_code == 404


def test_graph_json_with_cross_stack_edges(reader: TestClient, put_state, consume) -> None:  # type: ignore[no-untyped-def]
    seed(put_state, consume)
    ids = uids(reader)
    by_uid = {v: k for k, v in ids.items()}
    resp = reader.get("/api/v1/graph", params={"stack": "dev"})
    assert resp.status_code == 200 and resp.headers["content-type"].startswith("application/json")
    g = resp.json()
    nodes = {n["addr"]: n["external"] for n in g["nodes"]}
    assert nodes == {
        "aws_security_group.web": False,
        "terraform_data.a": False,
        "terraform_data.b": False,
        "terraform_data.c": False,
        "terraform_data.x": False,
        "terraform_data.y": False,
        "module.net.aws_vpc.main": True,  # the far end of the cross-stack ref
    }
    edges = {(by_uid[e["src"]], by_uid[e["dst"]], e["kind"]) for e in g["edges"]}
    assert edges == {
        ("aws_security_group.web", "module.net.aws_vpc.main", "ref"),
        ("terraform_data.b", "terraform_data.a", "depends_on"),
        ("terraform_data.c", "terraform_data.b", "depends_on"),
        ("terraform_data.x", "terraform_data.y", "depends_on"),
        ("terraform_data.y", "terraform_data.x", "depends_on"),
    }
    both = reader.get("/api/v1/graph", params={"stack": ["dev", "prod"]}).json()
    assert {n["addr"] for n in both["nodes"] if n["external"]} == set()
    assert len(both["nodes"]) == 12 and len(both["edges"]) == 5 + 10
    prod = reader.get("/api/v1/graph", params={"stack": "prod"}).json()
    assert {n["addr"] for n in prod["nodes"] if n["external"]} == {"aws_security_group.web"}
    assert reader.get("/api/v1/graph", params={"stack": "prod", "project": "apps"}).json() == {
        "nodes": [],
        "edges": [],
    }


def test_graph_dot_and_mermaid(reader: TestClient, put_state, consume) -> None:  # type: ignore[no-untyped-def]
    seed(put_state, consume)
    ids = uids(reader)
    dot = reader.get("/api/v1/graph", params={"stack": "prod", "format": "dot"})
    assert dot.status_code == 200 and dot.headers["content-type"].startswith("text/plain")
    text = dot.text
    assert text.startswith("digraph inventory {") and text.rstrip().endswith("}")
    vpc, sub_a, sg = (
        ids["module.net.aws_vpc.main"],
        ids['aws_subnet.private["a"]'],
        ids["aws_security_group.web"],
    )
    assert f'"{vpc}" [label="module.net.aws_vpc.main"];' in text
    assert f'"{sub_a}" [label="aws_subnet.private[\\"a\\"]"];' in text  # quotes escaped
    assert f'"{sg}" [label="aws_security_group.web", style=dashed];' in text  # external
    assert f'"{sub_a}" -> "{vpc}" [label="depends_on"];' in text
    assert f'"{sub_a}" -> "{vpc}" [label="ref"];' in text
    assert f'"{sg}" -> "{vpc}" [label="ref"];' in text
    assert 'label="terraform/net/prod";' in text and 'label="terraform/apps/dev";' in text
    assert text.count("{") == text.count("}")
    assert len(re.findall(r" -> ", text)) == 11

    mermaid = reader.get("/api/v1/graph", params={"stack": "prod", "format": "mermaid"})
    assert mermaid.headers["content-type"].startswith("text/plain")
    lines = mermaid.text.splitlines()
    assert lines[0] == "graph LR"

    def mid(uid: str) -> str:
        return "r" + uid.replace("-", "")

    assert f'  {mid(sub_a)}["aws_subnet.private[#quot;a#quot;]"]' in lines
    assert f'  {mid(sg)}["terraform/apps/dev: aws_security_group.web"]' in lines
    assert f"  {mid(sub_a)} -->|depends_on| {mid(vpc)}" in lines
    assert f"  {mid(sg)} -->|ref| {mid(vpc)}" in lines
    assert f"  class {mid(sg)} external" in lines
    for line in lines[1:]:  # node ids are plain identifiers
        assert re.match(
            r"^  (r[0-9a-f]{32}(\[\".*\"\]| -->\|[a-z_]+\| r[0-9a-f]{32})|classDef .+|class .+)$", line
        ), line
    bad = reader.get("/api/v1/graph", params={"format": "png"})
    assert bad.status_code == 422


def test_graph_of_pulumi_stack_has_parent_and_provider_edges(reader: TestClient, put_state, consume) -> None:  # type: ignore[no-untyped-def]
    from tests.factories import pulumi_export

    put_state(pulumi_export(), tool="pulumi", project="shop", stack="dev")
    consume()
    g = reader.get("/api/v1/graph", params={"tool": "pulumi"}).json()
    by_uid = {n["stable_uid"]: n["addr"].rsplit("::", 1)[-1] for n in g["nodes"]}
    assert {(by_uid[e["src"]], by_uid[e["dst"]], e["kind"]) for e in g["edges"]} >= {
        ("site", "shop-dev", "parent"),
        ("site", "default_6_0_0", "provider"),
    }
    site = next(u for u, a in by_uid.items() if a == "site")
    up = radius(reader, site, direction="upstream")
    assert {(a.rsplit("::", 1)[-1], d, k) for a, d, k in up} == {
        ("site", 0, None),
        ("shop-dev", 1, "parent"),
        ("default_6_0_0", 1, "provider"),
    }


def test_dot_output_parses_as_graphviz(reader: TestClient, put_state, consume) -> None:  # type: ignore[no-untyped-def]
    """pydot's DOT grammar (Graphviz's language) reads the export back: nodes, labels and edges."""
    import pydot

    seed(put_state, consume)
    source = reader.get("/api/v1/graph", params={"format": "dot"}).text
    [graph] = pydot.graph_from_dot_data(source)
    nodes = [
        n
        for sub in [graph, *graph.get_subgraphs()]
        for n in sub.get_nodes()
        if n.get_name() not in ("node", "edge", "graph")
    ]
    labels = {n.get("label") for n in nodes}
    assert '"aws_subnet.private[\\"a\\"]"' in labels, labels
    edges = [e for sub in [graph, *graph.get_subgraphs()] for e in sub.get_edges()]
    assert edges and all(e.get("label") for e in edges)
