"""`xcf compose validate|route|graph|schema` on real repositories (no server)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import jsonschema
from typer.testing import CliRunner

from xcloudflow.cli.main import app

from .conftest import commit_all, git

runner = CliRunner()


def xcf(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, ["compose", *args])
    return result.exit_code, result.output


def test_validate_the_example(example: Path) -> None:
    code, out = xcf("validate", "--repo", str(example))
    assert code == 0, out
    assert out.strip() == "valid: 5 compositions, 2 environments"
    code, out = xcf("validate", "--repo", str(example), "--env", "dev", "-o", "json")
    assert code == 0 and json.loads(out) == {
        "valid": True,
        "compositions": 5,
        "environments": 2,
        "policies": 3,
        "environment": "dev",
        "nodes": 5,
    }


def test_validate_prints_every_problem_one_per_line(example: Path) -> None:
    shutil.rmtree(example / "modules/web")
    path = example / "compositions/config/app-config.yaml"
    path.write_text(path.read_text().replace("engine: ansible", "engine: chef"))
    code, out = xcf("validate", "--repo", str(example))
    assert code == 1
    lines = out.strip().splitlines()
    assert (
        lines[0]
        == "compositions/apps/web.yaml:11: spec.modules[0].ref: module path modules/web does not exist"
    )
    assert lines[1].startswith(
        "compositions/config/app-config.yaml:10: spec.modules[0].engine: unknown engine 'chef'"
    )
    # environments listing the broken composition say so, at their own line
    assert lines[2].startswith(
        "envs/dev/environment.yaml:14: spec.compositions[3].ref: compositions/config/app-config"
    )
    assert "4 problem(s) found" in out


def test_validate_reports_a_cycle(example: Path) -> None:
    path = example / "compositions/platform/database.yaml"
    path.write_text(path.read_text().replace("compositions/foundation/network", "compositions/apps/web"))
    code, out = xcf("validate", "--repo", str(example))
    assert code == 1
    assert "a Platform composition cannot depend on compositions/apps/web (Application)" in out


def test_validate_a_commit_of_a_git_repository(example_git: Path) -> None:
    first = git(example_git, "rev-parse", "HEAD")
    (example_git / "compositions/apps/web.yaml").write_text("kind: [\n")
    commit_all(example_git, "break web")
    code, out = xcf("validate", "--repo", str(example_git), "--ref", "main")
    assert code == 1 and "compositions/apps/web.yaml:2: invalid YAML" in out
    code, out = xcf("validate", "--repo", str(example_git), "--ref", first)
    assert code == 0, out
    code, out = xcf("validate", "--repo", f"file://{example_git}", "--ref", "nope")
    assert code == 1 and "unknown ref 'nope'" in out


def test_validate_an_unreachable_url() -> None:
    code, out = xcf("validate", "--repo", "https://user:tok@127.0.0.1:9/platform.git", "--ref", "main")
    assert code == 1
    assert "cannot fetch repository https://***@127.0.0.1:9/platform.git" in out and "tok" not in out


def test_validate_an_unknown_environment(example: Path) -> None:
    code, out = xcf("validate", "--repo", str(example), "--env", "staging")
    assert code == 1 and "unknown environment 'staging' (known: dev, prod)" in out


def test_route_shows_each_value_with_its_source(example: Path) -> None:
    code, out = xcf("route", "--repo", str(example), "--env", "prod", "-o", "json")
    assert code == 0, out
    routes = {r["key"]: r for r in json.loads(out)}
    assert list(routes) == ["network/network", "database/database", "web/web", "app-config/app-config"]
    db = routes["database/database"]
    assert (db["approval"], db["sources"]["approval"]) == ("required", "environment")
    assert (db["backup"], db["sources"]["backup"]) == ("pre-change", "module")
    assert (db["reconcile"], db["interval_seconds"]) == ("periodic", 900)
    table = runner.invoke(
        app, ["compose", "route", "--repo", str(example), "--env", "prod"], env={"COLUMNS": "220"}
    ).output
    assert "required (environment)" in table and "terraform (inferred)" in table
    assert "periodic every 15m (matrix)" in table and "on_change (matrix)" in table


def test_graph(example: Path) -> None:
    code, out = xcf("graph", "--repo", str(example), "--env", "dev", "-o", "json")
    assert code == 0, out
    graph = json.loads(out)
    assert graph["order"] == [
        "network/network",
        "database/database",
        "preview/preview",
        "web/web",
        "app-config/app-config",
    ]
    assert graph["nodes"][-1]["depends_on"] == ["preview/preview", "web/web"]
    table = runner.invoke(
        app, ["compose", "graph", "--repo", str(example), "--env", "dev"], env={"COLUMNS": "220"}
    )
    assert table.exit_code == 0 and "preview/preview, web/web" in table.output


def test_schema() -> None:
    code, out = xcf("schema")
    assert code == 0
    schema = json.loads(out)
    jsonschema.Draft202012Validator.check_schema(schema)
    assert {"Composition", "Environment", "RepoConfig"} <= set(schema["$defs"])
