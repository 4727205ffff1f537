"""The plan graph: declared dependencies plus the layer order, a deterministic topological order,
few direct edges, and cycles reported as cycles with the line that closes them."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from xcloudflow.compose.graph import PlanGraph, build_graph, check_cycles
from xcloudflow.compose.loader import LAYER_RANK, load_repository
from xcloudflow.compose.yamlsrc import SpecError

from .conftest import Write


def test_example_prod_graph(example: Path) -> None:
    graph = build_graph(load_repository(example), "prod")
    assert graph.order == ["network/network", "database/database", "web/web", "app-config/app-config"]
    assert list(graph.nodes) == graph.order
    deps = {key: node.depends_on for key, node in graph.nodes.items()}
    assert deps == {
        "network/network": (),
        "database/database": ("network/network",),
        "web/web": ("database/database",),
        "app-config/app-config": ("web/web",),
    }
    database = graph.nodes["database/database"]
    assert (database.composition, database.module, database.ref, database.engine, database.layer) == (
        "compositions/platform/database",
        "database",
        "modules/database",
        "terraform",
        "Platform",
    )
    assert database.route.approval == "required"  # approval: environment, and prod is protected
    # env spec.inputs < module inputs < the environment's composition inputs
    assert graph.nodes["web/web"].inputs == {"env_name": "prod", "image": "nginx:1.27", "replicas": 3}
    assert graph.dependents("network/network") == {"database/database", "web/web", "app-config/app-config"}
    assert graph.dependents("app-config/app-config") == set()
    as_json = graph.to_json()
    assert as_json["order"] == graph.order and as_json["nodes"][1]["depends_on"] == ["network/network"]


def test_example_dev_graph_runs_application_and_ephemeral_side_by_side(example: Path) -> None:
    graph = build_graph(load_repository(example), "dev")
    assert graph.order == [
        "network/network",
        "database/database",
        "preview/preview",
        "web/web",
        "app-config/app-config",
    ]
    assert graph.nodes["preview/preview"].depends_on == ("database/database",)
    assert graph.nodes["app-config/app-config"].depends_on == ("preview/preview", "web/web")
    assert graph.nodes["database/database"].route.approval == "automatic"


def test_unknown_environment(example: Path) -> None:
    with pytest.raises(SpecError) as caught:
        build_graph(load_repository(example), "staging")
    assert str(caught.value.issues[0]) == (
        "envs/staging/environment.yaml: unknown environment 'staging' (known: dev, prod)"
    )


def _app(write: Write, name: str, deps: list[str]) -> None:
    lines = "".join(f"\n            - ref: compositions/apps/{d}" for d in deps)
    write(
        f"compositions/apps/{name}.yaml",
        f"""
        apiVersion: xcloudflow.io/v1alpha1
        kind: Composition
        metadata: {{name: {name}}}
        spec:
          lifecycle: Application
          modules:
            - {{ref: modules/web, engine: terraform}}
          dependencies:{lines or " []"}
        """,
    )


def test_a_dependency_cycle_prints_the_cycle_and_the_line_that_closes_it(example: Path, write: Write) -> None:
    _app(write, "a", ["b"])
    _app(write, "b", ["c"])
    _app(write, "c", ["a"])
    env = example / "envs/dev/environment.yaml"
    env.write_text(
        env.read_text()
        + "    - ref: compositions/apps/a\n    - ref: compositions/apps/b\n    - ref: compositions/apps/c\n"
    )
    repo = load_repository(example)  # a cycle is not a document problem...
    assert [str(i) for i in check_cycles(repo)] == [
        "compositions/apps/c.yaml:9: spec.dependencies[0].ref: dependency cycle: compositions/apps/a -> "
        "compositions/apps/b -> compositions/apps/c -> compositions/apps/a (read '->' as 'depends on')"
    ]
    with pytest.raises(SpecError) as caught:  # ...but no graph can be built
        build_graph(repo, "dev")
    assert [str(i) for i in caught.value.issues] == [
        "compositions/apps/c.yaml:9: spec.dependencies[0].ref: dependency cycle: a/web -> b/web -> c/web -> "
        "a/web (read '->' as 'depends on')"
    ]
    build_graph(repo, "prod")  # prod does not hold the cycle


def test_a_module_cycle_inside_a_composition(example: Path, write: Write) -> None:
    write(
        "compositions/platform/pair.yaml",
        """
        apiVersion: xcloudflow.io/v1alpha1
        kind: Composition
        metadata: {name: pair}
        spec:
          lifecycle: Platform
          modules:
            - {ref: modules/database, name: primary, dependsOn: [replica]}
            - {ref: modules/database, name: replica, dependsOn: [primary]}
        """,
    )
    repo = load_repository(example)
    assert [str(i) for i in check_cycles(repo)] == [
        "compositions/platform/pair.yaml:8: spec.modules[1].dependsOn[0]: module dependency cycle: "
        "pair/primary -> pair/replica -> pair/primary (read '->' as 'depends on')"
    ]


def test_dependson_orders_modules_and_dependencies_wait_for_exit_modules(example: Path, write: Write) -> None:
    write(
        "compositions/platform/stack.yaml",
        """
        apiVersion: xcloudflow.io/v1alpha1
        kind: Composition
        metadata: {name: stack}
        spec:
          lifecycle: Platform
          modules:
            - {ref: modules/database, name: schema, dependsOn: [db]}
            - {ref: modules/database, name: db}
            - {ref: modules/database, name: cache}
          dependencies:
            - ref: compositions/foundation/network
        """,
    )
    path = example / "compositions/apps/web.yaml"
    path.write_text(path.read_text().replace("compositions/platform/database", "compositions/platform/stack"))
    for name in ("prod", "dev"):
        env = example / f"envs/{name}/environment.yaml"
        env.write_text(env.read_text() + "    - ref: compositions/platform/stack\n")
    graph = build_graph(load_repository(example), "prod")
    deps = {key: node.depends_on for key, node in graph.nodes.items()}
    assert deps["stack/db"] == ("network/network",)
    assert deps["stack/schema"] == ("stack/db",)  # reaches network through db
    assert deps["stack/cache"] == ("network/network",)
    # web waits for the exit modules of stack (schema, cache), not for db, and (layer order) for the
    # other exit node of the Platform layer
    assert deps["web/web"] == ("database/database", "stack/cache", "stack/schema")
    # app-config is Config: it waits for the exit nodes of the Application rank only
    assert deps["app-config/app-config"] == ("web/web",)
    assert graph.order.index("stack/db") < graph.order.index("stack/schema") < graph.order.index("web/web")


def _random_repo(root: Path, seed: int, count: int) -> dict[str, tuple[str, list[str]]]:
    """A repository of `count` compositions with random layers and random acyclic dependencies."""
    rng = random.Random(seed)
    (root / "modules/m").mkdir(parents=True)
    (root / "modules/m/main.tf").write_text('resource "terraform_data" "x" {}\n')
    layers = ["Foundation", "Platform", "Application", "Ephemeral", "Config"]
    made: dict[str, tuple[str, list[str]]] = {}
    names = []
    for i in range(count):
        layer = rng.choice(layers)
        name = f"c{i:04d}"
        candidates = [n for n in names if LAYER_RANK[made[n][0]] <= LAYER_RANK[layer]]
        deps = rng.sample(candidates, min(len(candidates), rng.randint(0, 3)))
        modules = "".join(
            f"\n    - {{ref: modules/m, name: m{j}"
            + (", dependsOn: [m0]" if j and rng.random() < 0.5 else "")
            + "}"
            for j in range(rng.randint(1, 3))
        )
        dep_text = "".join(f"\n    - ref: compositions/{d}" for d in deps)
        (root / "compositions").mkdir(exist_ok=True)
        (root / f"compositions/{name}.yaml").write_text(
            "apiVersion: xcloudflow.io/v1alpha1\nkind: Composition\n"
            f"metadata: {{name: {name}}}\nspec:\n  lifecycle: {layer}\n  modules:{modules}\n"
            f"  dependencies:{dep_text or ' []'}\n"
        )
        made[name] = (layer, deps)
        names.append(name)
    (root / "envs/all").mkdir(parents=True)
    refs = "".join(f"\n    - ref: compositions/{n}" for n in rng.sample(names, len(names)))
    (root / "envs/all/environment.yaml").write_text(
        f"apiVersion: xcloudflow.io/v1alpha1\nkind: Environment\nmetadata: {{name: all}}\nspec:\n  compositions:{refs}\n"
    )
    return made


def _closure(graph: PlanGraph, key: str) -> set[str]:
    seen: set[str] = set()
    stack = [key]
    while stack:
        for pred in graph.nodes[stack.pop()].depends_on:
            if pred not in seen:
                seen.add(pred)
                stack.append(pred)
    return seen


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_random_repositories_keep_every_ordering_rule_with_few_edges(tmp_path: Path, seed: int) -> None:
    made = _random_repo(tmp_path, seed, 120)
    repo = load_repository(tmp_path)
    graph = build_graph(repo, "all")
    position = {key: i for i, key in enumerate(graph.order)}
    assert sorted(graph.order) == sorted(graph.nodes)
    for key, node in graph.nodes.items():
        assert all(position[p] < position[key] for p in node.depends_on)
        before = _closure(graph, key)
        rank = LAYER_RANK[node.layer]
        # every node of an earlier layer comes before, transitively
        earlier = {k for k, n in graph.nodes.items() if LAYER_RANK[n.layer] < rank}
        assert earlier <= before, key
        # every module of every declared dependency too
        comp_name = key.split("/")[0]
        for dep in made[comp_name][1]:
            assert {k for k in graph.nodes if k.startswith(dep + "/")} <= before
    # and the same rank runs side by side unless declared: far fewer edges than "everything before"
    edges = sum(len(n.depends_on) for n in graph.nodes.values())
    dense = sum(
        sum(1 for m in graph.nodes.values() if LAYER_RANK[m.layer] < LAYER_RANK[n.layer])
        for n in graph.nodes.values()
    )
    assert edges < dense / 3
    # deterministic
    assert build_graph(load_repository(tmp_path), "all").order == graph.order
