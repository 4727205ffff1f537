"""The decision matrix and the precedence of its overrides, each value with its source."""

from __future__ import annotations

from pathlib import Path

import pytest

from xcloudflow.compose.loader import load_repository
from xcloudflow.compose.router import BUILTIN_MATRIX, ROUTE_FIELDS, route_module
from xcloudflow.errors import NotFound

from .conftest import Write


def test_the_builtin_matrix_is_the_seeds() -> None:
    rows = {
        layer: (r.engine, r.reconcile, r.drift, r.approval, r.backup) for layer, r in BUILTIN_MATRIX.items()
    }
    assert rows == {
        "Foundation": ("terraform", "on_drift", "alert", "required", "pre-change"),
        "Platform": ("terraform", "periodic", "correct", "environment", "pre-change"),
        "Application": ("kubernetes", "continuous", "correct", "automatic", "none"),
        "Config": ("ansible", "on_change", "correct", "automatic", "none"),
        "Ephemeral": ("terraform", "continuous", "gc", "none", "none"),
    }
    assert dict(BUILTIN_MATRIX["Platform"].intervals) == {"low": 1800, "medium": 900, "high": 300}


def test_routes_of_the_example(example: Path) -> None:
    repo = load_repository(example)
    network = route_module(repo, "compositions/foundation/network", "network")
    assert network.to_json() == {
        "layer": "Foundation",
        "frequency": "low",
        "engine": "terraform",
        "reconcile": "on_drift",
        "interval_seconds": 86400,
        "drift": "alert",
        "approval": "required",
        "change_window": None,
        "backup": "pre-change",
        "sources": {
            "frequency": "composition",
            "engine": "inferred",
            "reconcile": "matrix",
            "interval": "matrix",
            "drift": "matrix",
            "approval": "matrix",
            "change_window": "matrix",
            "backup": "matrix",
        },
    }
    database = route_module(repo, "compositions/platform/database", "database")
    assert (database.approval, database.sources["approval"]) == ("environment", "module")
    assert (database.backup, database.sources["backup"]) == ("pre-change", "module")
    assert (database.reconcile, database.interval_seconds) == ("periodic", 900)  # medium
    web = route_module(repo, "compositions/apps/web", "web")
    assert (web.engine, web.sources["engine"]) == (
        "terraform",
        "module",
    )  # explicit beats the matrix's kubernetes
    assert (web.reconcile, web.interval_seconds, web.frequency) == ("continuous", 60, "high")
    config = route_module(repo, "compositions/config/app-config", "app-config")
    assert (config.engine, config.reconcile, config.interval_seconds) == ("ansible", "on_change", None)
    preview = route_module(repo, "compositions/ephemeral/preview", "preview")
    assert (preview.drift, preview.approval, preview.interval_seconds) == ("gc", "none", 120)


def test_approval_environment_is_resolved_by_the_environment(example: Path) -> None:
    repo = load_repository(example)
    prod = route_module(repo, "compositions/platform/database", "database", "prod")
    dev = route_module(repo, "compositions/platform/database", "database", "dev")
    assert (prod.approval, prod.sources["approval"]) == ("required", "environment")
    assert (dev.approval, dev.sources["approval"]) == ("automatic", "environment")
    # other approvals do not depend on the environment
    network = route_module(repo, "compositions/foundation/network", "network", "dev")
    assert (network.approval, network.sources["approval"]) == ("required", "matrix")


def test_precedence_matrix_repo_composition_module(example: Path, write: Write) -> None:
    config = example / ".xcf.yaml"
    config.write_text(
        config.read_text().replace(
            "  defaults:\n",
            "  matrix:\n"
            "    PaaS: {reconcile: {strategy: periodic, interval: 10m}, approval: required, drift: alert,"
            " changeWindow: weeknights, engine: pulumi, changeFrequency: high}\n"
            "  defaults:\n",
        )
    )
    write(
        "compositions/platform/queue.yaml",
        """
        apiVersion: xcloudflow.io/v1alpha1
        kind: Composition
        metadata: {name: queue}
        spec:
          lifecycle: Platform
          modules:
            - ref: modules/database
              name: plain
            - ref: modules/database
              name: tuned
              engine: terraform
              policies:
                drift: correct
                approval: automatic
                backup: none
                reconcile: {interval: 2m}
          reconcile: {interval: 1h}
        """,
    )
    repo = load_repository(example)
    plain = route_module(repo, "compositions/platform/queue", "plain")
    assert (plain.frequency, plain.sources["frequency"]) == ("high", "repo")
    assert (plain.reconcile, plain.sources["reconcile"]) == ("periodic", "repo")
    assert (plain.interval_seconds, plain.sources["interval"]) == (3600, "composition")
    assert (plain.approval, plain.sources["approval"]) == ("required", "repo")
    assert (plain.change_window, plain.sources["change_window"]) == ("weeknights", "repo")
    assert (plain.drift, plain.sources["drift"]) == ("alert", "repo")
    # the repo says pulumi for Platform, but the files say terraform: inference wins over repo and matrix
    assert (plain.engine, plain.sources["engine"]) == ("terraform", "inferred")
    tuned = route_module(repo, "compositions/platform/queue", "tuned")
    assert (tuned.engine, tuned.sources["engine"]) == ("terraform", "module")
    assert (tuned.interval_seconds, tuned.sources["interval"]) == (120, "module")
    assert (tuned.drift, tuned.approval, tuned.backup) == ("correct", "automatic", "none")
    assert {tuned.sources[k] for k in ("drift", "approval", "backup")} == {"module"}
    assert set(tuned.sources) == set(ROUTE_FIELDS)


def test_strategy_changes_decide_the_interval(example: Path, write: Write) -> None:
    write(
        "compositions/config/cron.yaml",
        """
        apiVersion: xcloudflow.io/v1alpha1
        kind: Composition
        metadata: {name: cron}
        spec:
          lifecycle: Config
          reconcile: {strategy: periodic}
          modules:
            - ref: playbooks/app-config.yml
            - ref: playbooks/app-config.yml
              name: once
              policies: {reconcile: {strategy: on_change}}
        """,
    )
    repo = load_repository(example)
    cron = route_module(repo, "compositions/config/cron", "app-config")
    # Config has no matrix interval; a periodic reconcile without one gets the periodic fallback (15m)
    assert (cron.reconcile, cron.interval_seconds, cron.sources["interval"]) == ("periodic", 900, "matrix")
    once = route_module(repo, "compositions/config/cron", "once")
    assert (once.reconcile, once.interval_seconds, once.sources["interval"]) == ("on_change", None, "module")


def test_engine_falls_back_to_the_matrix_when_nothing_is_inferred(example: Path, write: Write) -> None:
    (example / "modules/k8s").mkdir()
    (example / "modules/k8s/deployment.yaml").write_text("apiVersion: apps/v1\nkind: Deployment\n")
    write(
        "compositions/apps/api.yaml",
        """
        apiVersion: xcloudflow.io/v1alpha1
        kind: Composition
        metadata: {name: api}
        spec:
          lifecycle: App
          modules:
            - ref: modules/k8s
        """,
    )
    repo = load_repository(example)
    api = route_module(repo, "compositions/apps/api", "k8s")
    assert (api.engine, api.sources["engine"]) == ("kubernetes", "matrix")


def test_unknown_composition_module_or_environment(example: Path) -> None:
    repo = load_repository(example)
    with pytest.raises(NotFound, match="no composition compositions/nope"):
        route_module(repo, "compositions/nope", "x")
    with pytest.raises(NotFound, match="has no module 'nope'"):
        route_module(repo, "compositions/apps/web", "nope")
    with pytest.raises(NotFound, match="no environment 'staging'"):
        route_module(repo, "compositions/platform/database", "database", "staging")
