"""`xcf compose ...`: the compose control plane from the command line.

The local commands (`validate`, `route`, `graph`, `schema`) read a repository directly, with no
server (the server-side ones, `plan`, `apply`, `status`, ..., live in changeset_cmd): a working tree as it is on disk (uncommitted edits included), or with `--ref` or a git URL one
commit fetched with the git CLI. They are what a pull-request check runs. Exit codes: 0 valid, 1 the
repository has problems (each printed as `file:line: field: message`), 2 usage.

Heavy modules (pydantic models, the loader, git) are imported inside the commands so `xcf --help`
stays fast; nothing here touches the database.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from xcloudflow.cli import changeset_cmd
from xcloudflow.cli.client import err, fail
from xcloudflow.cli.output import Format, emit, out

if TYPE_CHECKING:
    from xcloudflow.compose.graph import PlanGraph
    from xcloudflow.compose.loader import Repository

compose_app = typer.Typer(
    help="Compose: a Git monorepo of compositions routed, ordered, planned and applied.", no_args_is_help=True
)
OUTPUT = typer.Option(Format.table, "--output", "-o", help="table or json")
REPO = typer.Option(".", "--repo", "-r", help="Repository: a directory, or a git URL (with --ref).")
REF = typer.Option(None, "--ref", help="Read this branch, tag or commit (git) instead of the working tree.")
ENV = typer.Option(..., "--env", "-e", help="Environment (a directory under envs/).")


@contextmanager
def _repository(repo: str, ref: str | None) -> Iterator[Repository]:
    """The loaded repository; problems are printed one per line and exit 1."""
    from xcloudflow.compose import repo as repos
    from xcloudflow.compose.loader import load_repository
    from xcloudflow.compose.yamlsrc import SpecError
    from xcloudflow.errors import DomainError

    try:
        if ref is None and not repos.is_url(repo):
            yield load_repository(repos.working_tree(Path(repo)).root)
            return
        source = repo if repos.is_url(repo) else str(Path(repo).expanduser().resolve())
        # The person running the CLI may read any directory they can: the root-only restriction
        # is the server's (its API users must not read the server's disk).
        with repos.checkout(source, ref, local_roots=[Path("/")]) as snapshot:
            yield load_repository(snapshot.root)
    except SpecError as exc:
        _issues(exc)
    except DomainError as exc:
        fail(exc.message)


def _issues(exc: Any) -> None:
    for issue in exc.issues:
        typer.echo(str(issue))
    fail(f"{len(exc.issues)} problem(s) found")


def _graph(repository: Repository, env: str) -> PlanGraph:
    from xcloudflow.compose.graph import build_graph
    from xcloudflow.compose.yamlsrc import SpecError

    try:
        return build_graph(repository, env)
    except SpecError as exc:
        _issues(exc)
        raise AssertionError("unreachable") from exc


@compose_app.command("validate")
def validate(
    repo: str = REPO,
    ref: str | None = REF,
    env: str | None = typer.Option(None, "--env", "-e", help="Also build this environment's graph."),
    output: Format = OUTPUT,
) -> None:
    """Check every document of the repository (and with --env, the environment's graph)."""
    from xcloudflow.compose.graph import check_cycles
    from xcloudflow.compose.yamlsrc import SpecError

    with _repository(repo, ref) as repository:
        issues = check_cycles(repository)
        if issues:
            _issues(SpecError(issues))
        nodes = len(_graph(repository, env).nodes) if env else None
        result = {
            "valid": True,
            "compositions": len(repository.compositions),
            "environments": len(repository.environments),
            "policies": len(repository.policy_files),
            **({"environment": env, "nodes": nodes} if env else {}),
        }
    if output is Format.json:
        emit(result, output)
        return
    text = f"valid: {result['compositions']} compositions, {result['environments']} environments"
    if env:
        text += f"; environment {env}: {nodes} nodes"
    out.print(text, highlight=False)


def _with_source(value: Any, source: str) -> str:
    return f"{'-' if value is None else value} ({source})"


@compose_app.command("route")
def route(repo: str = REPO, env: str = ENV, ref: str | None = REF, output: Format = OUTPUT) -> None:
    """Per module: engine, reconcile, drift, approval, backup, and where each value came from."""
    from xcloudflow.compose.dsl import format_duration

    with _repository(repo, ref) as repository:
        graph = _graph(repository, env)
    if output is Format.json:
        emit(
            [
                {
                    "key": n.key,
                    "composition": n.composition,
                    "module": n.module,
                    "ref": n.ref,
                    **n.route.to_json(),
                }
                for n in graph.nodes.values()
            ],
            output,
        )
        return
    rows = []
    for node in graph.nodes.values():
        r, s = node.route, node.route.sources
        interval = format_duration(r.interval_seconds) if r.interval_seconds else None
        rows.append(
            {
                "node": node.key,
                "layer": f"{r.layer} ({r.frequency})",
                "engine": _with_source(r.engine, s["engine"]),
                "reconcile": _with_source(
                    r.reconcile + (f" every {interval}" if interval else ""), s["reconcile"]
                ),
                "drift": _with_source(r.drift, s["drift"]),
                "approval": _with_source(
                    r.approval + (f" in window {r.change_window}" if r.change_window else ""), s["approval"]
                ),
                "backup": _with_source(r.backup, s["backup"]),
            }
        )
    emit(rows, output, ["node", "layer", "engine", "reconcile", "drift", "approval", "backup"])


@compose_app.command("graph")
def graph(repo: str = REPO, env: str = ENV, ref: str | None = REF, output: Format = OUTPUT) -> None:
    """The environment's nodes in the order they are applied, with their direct dependencies."""
    with _repository(repo, ref) as repository:
        plan_graph = _graph(repository, env)
    if output is Format.json:
        emit(plan_graph.to_json(), output)
        return
    rows = [
        {
            "#": index,
            "node": node.key,
            "layer": node.layer,
            "engine": node.engine,
            "ref": node.ref,
            "depends on": ", ".join(node.depends_on) or "-",
        }
        for index, node in enumerate(plan_graph.nodes.values(), 1)
    ]
    if not rows:
        err.print(f"environment {env} has no nodes")
        return
    emit(rows, output, ["#", "node", "layer", "engine", "ref", "depends on"])


@compose_app.command("schema")
def schema() -> None:
    """Print the JSON Schema (draft 2020-12) of Composition, Environment and RepoConfig documents."""
    from xcloudflow.compose.dsl import json_schema

    print(json.dumps(json_schema(), indent=2))


changeset_cmd.register(compose_app)  # plan, apply, status, approve, ... (through a server)
