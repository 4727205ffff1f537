"""Compose benchmark: plan-graph work for a synthetic repository, and Rego evaluation per node.

Run: .venv/bin/python bench/compose.py [--quick] [--compositions 1000] [--json]

In one process, on a synthetic repository written to a temporary directory:

1. graph: 1,000 compositions (--compositions) with random layers (the five lifecycle classes), 1-2
   Terraform modules each (some with `dependsOn` between them), random ACYCLIC dependencies on 0-3
   earlier compositions of the same or an earlier layer, one environment listing them all, a
   `.xcf.yaml` with matrix overrides, and the example repository's policies plus two more. The timed
   work is what every `xcf compose validate --env` and every plan does before any engine runs:
   `load_repository` (read + parse + validate every document, check every reference and module path),
   `check_cycles`, and `build_graph` (route every module, build the DAG, order it). 5 repetitions
   (--repeats), each from a cold `load_repository` (the OS page cache is warm after the first);
   printed: median and p95 seconds, goal < 2 s. Baseline, measured in the same run on the same
   files: plain `yaml.safe_load` of every document (pure-Python PyYAML, as most tools would parse),
   and the same with the C loader (`yaml.CSafeLoader`, what the loader uses); the ratios say what the
   validation, checks, routing and graph cost on top of merely parsing.
2. rego: the repository's policies compiled once with `xcloudflow.policy.rego.PolicyBundle.compile`
   (5 files in 2 policy sets, the compile time is printed) and evaluated once per node on the input
   the server builds (`xcloudflow.compose.checks.policy_input`: changeset, node with its route and
   inputs, a plan of 2 resource changes, the composition, the environment without its composition
   list, the budget) for up to --nodes nodes (default 300); printed: median and p95 milliseconds per
   node, goal < 5 ms median. Baseline, same run: the same evaluations with the whole environment
   document (its list of 1,000 compositions included) in the input. If `xcloudflow.policy` cannot be
   imported the section says so and is skipped.

The end of the output is a markdown block for docs/benchmarks.md. Exit code 1 if something failed (the
synthetic repository did not validate, a node's policy evaluation raised); a missed goal is printed,
not a failure. The temporary directory is removed unless --keep is given.
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import yaml

from xcloudflow.compose.graph import PlanGraph, build_graph, check_cycles
from xcloudflow.compose.loader import LAYER_RANK, Repository, load_repository

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE_POLICIES = ROOT / "examples" / "platform" / "policies"
LAYERS = ["Foundation", "Platform", "Application", "Ephemeral", "Config"]
GRAPH_GOAL = 2.0
REGO_GOAL_MS = 5.0
MODULES = 20

EXTRA_POLICIES = {
    "policies/security/tags.rego": """\
package xcf.security.tags

import rego.v1

deny contains msg if {
	input.node.layer == "Platform"
	some change in input.plan.resource_changes
	"delete" in change.actions
	not input.composition.metadata.labels.team
	msg := sprintf("node %s: %s is deleted and the composition has no team label", [input.node.key, change.address])
}
""",
    "policies/cost/counts.rego": """\
package xcf.cost.counts

import rego.v1

warn contains msg if {
	count(input.plan.resource_changes) > 20
	msg := sprintf("node %s changes %d resources", [input.node.key, count(input.plan.resource_changes)])
}
""",
}


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index]


# ---------------------------------------------------------------------------------------------------
# The synthetic repository
# ---------------------------------------------------------------------------------------------------


def synthesize(root: Path, count: int, seed: int) -> dict[str, int]:
    rng = random.Random(seed)
    for i in range(MODULES):
        module = root / f"modules/m{i:02d}"
        module.mkdir(parents=True)
        (module / "main.tf").write_text(
            'variable "size" {\n  default = 1\n}\n\nresource "terraform_data" "x" {\n  input = var.size\n}\n'
        )
    shutil.copytree(EXAMPLE_POLICIES, root / "policies")
    for rel, text in EXTRA_POLICIES.items():
        (root / rel).write_text(text)
    (root / ".xcf.yaml").write_text(
        "apiVersion: xcloudflow.io/v1alpha1\nkind: RepoConfig\nspec:\n"
        "  stateBackend: {project: bench}\n"
        "  matrix:\n    Platform: {reconcile: {strategy: periodic, interval: 10m}}\n"
        "  changeWindows:\n    nights: {days: [mon, tue, wed, thu, fri], start: '01:00', end: '05:00', timezone: UTC}\n"
        "  policySets:\n"
        "    - {name: security, path: policies/security, enforcement: mandatory}\n"
        "    - {name: cost, path: policies/cost, enforcement: advisory}\n"
        "  budget: {monthlyCost: 500, maxResourceChanges: 50}\n"
    )
    (root / "compositions").mkdir()
    layers: dict[str, str] = {}
    names: list[str] = []
    edges = modules = 0
    for i in range(count):
        layer = rng.choice(LAYERS)
        name = f"c{i:04d}"
        group = layer.lower()
        candidates = [n for n in names[-200:] if LAYER_RANK[layers[n]] <= LAYER_RANK[layer]]
        deps = rng.sample(candidates, min(len(candidates), rng.randint(0, 3)))
        edges += len(deps)
        module_lines = []
        for j in range(rng.randint(1, 2)):
            modules += 1
            extra = ", dependsOn: [m0]" if j else ""
            policy = (
                ", policies: {changeWindow: nights}" if layer == "Foundation" and rng.random() < 0.3 else ""
            )
            module_lines.append(
                f"    - {{ref: modules/m{rng.randrange(MODULES):02d}, name: m{j}, inputs: {{size: {j + 1}}}{extra}{policy}}}"
            )
        dep_lines = "".join(f"\n    - ref: compositions/{layers[d].lower()}/{d}" for d in deps)
        (root / "compositions" / group).mkdir(exist_ok=True)
        (root / "compositions" / group / f"{name}.yaml").write_text(
            "apiVersion: xcloudflow.io/v1alpha1\nkind: Composition\n"
            f"metadata:\n  name: {name}\n  labels: {{team: t{i % 7}}}\n"
            f"spec:\n  lifecycle: {layer}\n  changeFrequency: {rng.choice(['low', 'medium', 'high'])}\n"
            "  modules:\n" + "\n".join(module_lines) + "\n"
            f"  dependencies:{dep_lines or ' []'}\n" + ("  ttl: 2h\n" if layer == "Ephemeral" else "")
        )
        layers[name] = layer
        names.append(name)
    (root / "envs/bench").mkdir(parents=True)
    refs = "".join(f"\n    - ref: compositions/{layers[n].lower()}/{n}" for n in names)
    (root / "envs/bench/environment.yaml").write_text(
        "apiVersion: xcloudflow.io/v1alpha1\nkind: Environment\nmetadata: {name: bench}\n"
        f"spec:\n  protected: true\n  inputs: {{region: local}}\n  compositions:{refs}\n"
    )
    return {"compositions": count, "modules": modules, "declared_dependencies": edges}


# ---------------------------------------------------------------------------------------------------
# Measurements
# ---------------------------------------------------------------------------------------------------


def yaml_files(root: Path) -> list[Path]:
    return [
        root / ".xcf.yaml",
        *sorted((root / "envs").rglob("*.yaml")),
        *sorted((root / "compositions").rglob("*.yaml")),
    ]


def time_baseline(files: list[Path], loader: Any) -> float:
    t0 = time.perf_counter()
    for path in files:
        yaml.load(path.read_text(encoding="utf-8"), Loader=loader)
    return time.perf_counter() - t0


def time_graph(root: Path) -> tuple[float, Repository, PlanGraph]:
    t0 = time.perf_counter()
    repo = load_repository(root)
    issues = check_cycles(repo)
    if issues:
        raise RuntimeError(f"the synthetic repository has a cycle: {issues[0]}")
    graph = build_graph(repo, "bench")
    return time.perf_counter() - t0, repo, graph


def rego_inputs(repo: Repository, graph: PlanGraph, limit: int) -> list[dict[str, Any]]:
    """The policy input of each node exactly as the server builds it (`compose.checks.policy_input`),
    from transient ChangeSet/node objects (no database needed)."""
    from xcloudflow.compose.checks import policy_input
    from xcloudflow.compose.models import ComposeChangeSet, ComposeNode

    cs = ComposeChangeSet(
        id=uuid.uuid4(),
        environment="bench",
        kind="apply",
        commit="0" * 40,
        context={
            "environment": repo.environments["bench"].model_dump(
                mode="json", by_alias=True, exclude_none=True
            ),
            "budget": dict(repo.config.spec.budget),
            "costs": {"terraform_data": 0.0},
            "compositions": {
                ref: comp.model_dump(mode="json", by_alias=True, exclude_none=True)["spec"]
                for ref, comp in repo.compositions.items()
            },
        },
    )
    totals = {"add": 2 * limit, "change": 0, "destroy": limit // 10, "nodes": limit, "with_changes": limit}
    inputs = []
    for index, node in enumerate(list(graph.nodes.values())[:limit]):
        actions = ["delete", "create"] if index % 10 == 0 else ["create"]
        row = ComposeNode(
            key=node.key,
            composition=node.composition,
            module=node.module,
            ref=node.ref,
            engine=node.engine,
            layer=node.layer,
            route=node.route.to_json(),
            inputs=node.inputs,
            plan={
                "engine": node.engine,
                "has_changes": True,
                "summary": {"add": 2, "change": 0, "destroy": 1 if "delete" in actions else 0},
                "resource_changes": [
                    {"address": "terraform_data.x", "type": "terraform_data", "actions": actions},
                    {"address": "terraform_data.y", "type": "terraform_data", "actions": ["create"]},
                ],
            },
        )
        inputs.append(policy_input(cs, row, totals))
    return inputs


def bench_rego(repo: Repository, graph: PlanGraph, nodes: int) -> dict[str, Any]:
    try:
        from xcloudflow.policy.rego import PolicyBundle, PolicySetConfig
    except ImportError as exc:
        return {"available": False, "reason": f"policy module not available: {exc}"}
    sets = [
        PolicySetConfig(name=s.name, path=s.path, enforcement=s.enforcement)
        for s in repo.config.spec.policy_sets
    ]
    t0 = time.perf_counter()
    bundle = PolicyBundle.compile(repo.policy_files, sets)
    compile_s = time.perf_counter() - t0
    inputs = rego_inputs(repo, graph, nodes)
    bundle.evaluate(inputs[0])  # warm-up
    per_node: list[float] = []
    denials = warnings = 0
    for item in inputs:
        t0 = time.perf_counter()
        outcomes = bundle.evaluate(item)
        per_node.append((time.perf_counter() - t0) * 1000)
        denials += sum(len(o.deny) for o in outcomes)
        warnings += sum(len(o.warn) for o in outcomes)
    # Baseline: the same evaluations with the whole environment document, composition list included
    # (what a naive input carries): shows what converting a large input costs per evaluation.
    full_env = repo.environments["bench"].model_dump(mode="json", by_alias=True, exclude_none=True)
    full_ms: list[float] = []
    for item in inputs:
        big = {**item, "environment": full_env}
        t0 = time.perf_counter()
        bundle.evaluate(big)
        full_ms.append((time.perf_counter() - t0) * 1000)
    return {
        "available": True,
        "full_median_ms": statistics.median(full_ms),
        "full_p95_ms": percentile(full_ms, 0.95),
        "input_bytes": len(json.dumps(inputs[0])),
        "full_input_bytes": len(json.dumps({**inputs[0], "environment": full_env})),
        "files": len(repo.policy_files),
        "compile_s": compile_s,
        "nodes": len(per_node),
        "median_ms": statistics.median(per_node),
        "p95_ms": percentile(per_node, 0.95),
        "denials": denials,
        "warnings": warnings,
    }


def machine() -> str:
    import os

    return (
        f"{os.cpu_count()} CPUs, {platform.system()} {platform.release()}; Python {platform.python_version()}"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--compositions", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--nodes", type=int, default=300, help="nodes evaluated by the Rego part")
    parser.add_argument("--seed", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="200 compositions, 2 repeats, 50 nodes")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON only")
    parser.add_argument("--keep", action="store_true", help="keep the synthetic repository")
    args = parser.parse_args()
    if args.quick:
        args.compositions, args.repeats, args.nodes = 200, 2, 50
    scratch = Path(tempfile.mkdtemp(prefix="xcf-bench-compose-"))
    result: dict[str, Any] = {"machine": machine()}
    try:
        root = scratch / "repo"
        root.mkdir()
        result["repository"] = synthesize(root, args.compositions, args.seed)
        files = yaml_files(root)
        result["repository"]["yaml_files"] = len(files)
        log(f"synthetic repository: {result['repository']} in {root}")
        graph_s: list[float] = []
        safe_s: list[float] = []
        csafe_s: list[float] = []
        c_loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
        time_graph(root)  # warm-up: imports, page cache
        repo = graph = None
        for round_ in range(args.repeats):
            # interleaved, so machine noise spreads over all three
            seconds, repo, graph = time_graph(root)
            graph_s.append(seconds)
            safe_s.append(time_baseline(files, yaml.SafeLoader))
            csafe_s.append(time_baseline(files, c_loader))
            log(
                f"round {round_ + 1}: graph {seconds:.3f} s, safe_load {safe_s[-1]:.3f} s, C loader {csafe_s[-1]:.3f} s"
            )
        assert repo is not None and graph is not None
        edges = sum(len(n.depends_on) for n in graph.nodes.values())
        result["graph"] = {
            "nodes": len(graph.nodes),
            "direct_edges": edges,
            "median_s": statistics.median(graph_s),
            "p95_s": percentile(graph_s, 0.95),
            "safe_load_median_s": statistics.median(safe_s),
            "csafe_load_median_s": statistics.median(csafe_s),
        }
        result["graph"]["ratio_safe_load"] = (
            result["graph"]["median_s"] / result["graph"]["safe_load_median_s"]
        )
        result["graph"]["ratio_csafe_load"] = (
            result["graph"]["median_s"] / result["graph"]["csafe_load_median_s"]
        )
        result["rego"] = bench_rego(repo, graph, args.nodes)
    except Exception as exc:
        log(f"FAILED: {exc}")
        return 1
    finally:
        if args.keep:
            log(f"kept {scratch}")
        else:
            shutil.rmtree(scratch, ignore_errors=True)
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    print(report(result, args))
    return 0


def report(result: dict[str, Any], args: argparse.Namespace) -> str:
    g, r, repo = result["graph"], result["rego"], result["repository"]
    goal = "met" if g["median_s"] < GRAPH_GOAL else "MISSED"
    lines = [
        "## Compose (issue 5)",
        "",
        f"Command: `.venv/bin/python bench/compose.py{' --quick' if args.quick else ''}`. Machine: {result['machine']}.",
        "",
        f"Synthetic repository: {repo['compositions']} compositions, {repo['modules']} modules, "
        f"{repo['declared_dependencies']} declared composition dependencies (random, acyclic), "
        f"{repo['yaml_files']} YAML files, one environment with all of them.",
        "",
        f"Load + validate + cycle check + route + graph, {args.repeats} cold repetitions: {g['nodes']} nodes, "
        f"{g['direct_edges']} direct edges.",
        "",
        "| what | median s | p95 s | xcf / this |",
        "|---|---:|---:|---:|",
        f"| xcf: load + validate + route + graph | {g['median_s']:.3f} | {g['p95_s']:.3f} | 1.00 |",
        f"| baseline: `yaml.safe_load` of every file | {g['safe_load_median_s']:.3f} | | {g['ratio_safe_load']:.2f} |",
        f"| baseline: `yaml.load(CSafeLoader)` of every file | {g['csafe_load_median_s']:.3f} | | "
        f"{g['ratio_csafe_load']:.2f} |",
        "",
        f"Goal < {GRAPH_GOAL:g} s: {goal}.",
        "",
    ]
    if not r.get("available"):
        lines.append(f"Rego: skipped ({r['reason']}).")
    else:
        rego_goal = "met" if r["median_ms"] < REGO_GOAL_MS else "MISSED"
        lines += [
            f"Rego: {r['files']} policy files compiled once in {r['compile_s'] * 1000:.0f} ms, evaluated per node "
            f"on the planner's input for {r['nodes']} nodes ({r['denials']} denials, {r['warnings']} warnings).",
            "",
            "| Rego per node | median ms | p95 ms | xcf / this |",
            "|---|---:|---:|---:|",
            f"| xcf: the planner's input (~{max(1, r['input_bytes'] // 1024)} KiB) | "
            f"{r['median_ms']:.2f} | {r['p95_ms']:.2f} | 1.00 |",
            f"| baseline: the whole environment document in the input (~{r['full_input_bytes'] // 1024} KiB) | "
            f"{r['full_median_ms']:.2f} | {r['full_p95_ms']:.2f} | {r['median_ms'] / r['full_median_ms']:.2f} |",
            "",
            f"Goal < {REGO_GOAL_MS:g} ms median: {rego_goal}.",
        ]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
