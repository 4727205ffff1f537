"""The router: the seed's decision matrix (lifecycle x change frequency) turned into one `Route` per
module, with the source of every value.

Seed 001 section 0 fixes the policy baseline: the more foundational a resource, the more conservative
its handling (detect, alert, require approval); the closer to the application, the more automatic.
`BUILTIN_MATRIX` is that table. Precedence, lowest to highest: the built-in matrix, the repository's
`.xcf.yaml` matrix overrides (`repo`), the engine inferred from the module's files (`inferred`, engine
only), the composition (`reconcile`), the module's `engine` and `policies` (`module`), and, when an
environment is given, `approval: environment` resolved by the environment's `protected` flag
(`environment`). `xcf compose route` prints each value with its source so nobody has to guess why a
database waits for approval.

Pure: reads a loaded `Repository`, never files, never the database.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from xcloudflow.compose.dsl import Reconcile
from xcloudflow.errors import NotFound

if TYPE_CHECKING:
    from xcloudflow.compose.loader import Repository

RouteSource = Literal["matrix", "repo", "inferred", "composition", "module", "environment"]
ROUTE_FIELDS = (
    "frequency",
    "engine",
    "reconcile",
    "interval",
    "drift",
    "approval",
    "change_window",
    "backup",
)
# Strategies that run on a schedule; `on_change` runs when the repository changes, so it has none.
SCHEDULED = ("on_drift", "periodic", "continuous")
FALLBACK_INTERVAL = {"on_drift": 86400, "periodic": 900, "continuous": 300}


@dataclass(frozen=True)
class MatrixRow:
    engine: str
    reconcile: str
    intervals: Mapping[str, int | None]  # change frequency -> seconds
    drift: str
    approval: str
    change_window: str | None
    backup: str
    default_frequency: str


def _every(low: int | None, medium: int | None, high: int | None) -> dict[str, int | None]:
    return {"low": low, "medium": medium, "high": high}


BUILTIN_MATRIX: Mapping[str, MatrixRow] = {
    # Foundation: detect only (a daily audit), never correct automatically, always a human.
    "Foundation": MatrixRow(
        "terraform", "on_drift", _every(86400, 86400, 86400), "alert", "required", None, "pre-change", "low"
    ),
    # Platform: conservative periodic reconcile (5-30 min), correct drift, approval in protected envs.
    "Platform": MatrixRow(
        "terraform",
        "periodic",
        _every(1800, 900, 300),
        "correct",
        "environment",
        None,
        "pre-change",
        "medium",
    ),
    # Application: continuous reconcile, automatic, nothing to back up (images rebuild).
    "Application": MatrixRow(
        "kubernetes", "continuous", _every(300, 120, 60), "correct", "automatic", None, "none", "high"
    ),
    # Config: applied when the repository changes (PR merged).
    "Config": MatrixRow(
        "ansible", "on_change", _every(None, None, None), "correct", "automatic", None, "none", "high"
    ),
    # Ephemeral: continuous with TTL garbage collection, no gate.
    "Ephemeral": MatrixRow(
        "terraform", "continuous", _every(600, 300, 120), "gc", "none", None, "none", "high"
    ),
}


@dataclass(frozen=True)
class Route:
    layer: str
    frequency: str
    engine: str
    reconcile: str
    interval_seconds: int | None
    drift: str
    approval: str
    change_window: str | None
    backup: str
    sources: dict[str, RouteSource]  # keys: ROUTE_FIELDS

    def to_json(self) -> dict[str, Any]:
        return {
            "layer": self.layer,
            "frequency": self.frequency,
            "engine": self.engine,
            "reconcile": self.reconcile,
            "interval_seconds": self.interval_seconds,
            "drift": self.drift,
            "approval": self.approval,
            "change_window": self.change_window,
            "backup": self.backup,
            "sources": dict(self.sources),
        }


class _Resolver:
    """Values set from lowest to highest precedence; the last `put` wins and records its source."""

    def __init__(self) -> None:
        self.values: dict[str, Any] = {}
        self.sources: dict[str, RouteSource] = {}

    def put(self, name: str, value: Any, source: RouteSource) -> None:
        if value is not None:
            self.values[name] = value
            self.sources[name] = source

    def reconcile(self, spec: Reconcile | None, source: RouteSource) -> None:
        if spec is not None:
            self.put("reconcile", spec.strategy, source)
            self.put("interval", spec.interval, source)


def route_module(
    repo: Repository, composition_ref: str, module_name: str, environment: str | None = None
) -> Route:
    """The route of one module. With `environment`, `approval: environment` becomes `required` in a
    protected environment and `automatic` elsewhere (source `environment`)."""
    comp = repo.compositions.get(composition_ref)
    if comp is None:
        raise NotFound(f"no composition {composition_ref}")
    module = next((m for m in comp.spec.modules if m.module_name == module_name), None)
    if module is None:
        raise NotFound(f"composition {composition_ref} has no module {module_name!r}")
    spec = comp.spec
    layer = spec.lifecycle
    row = BUILTIN_MATRIX[layer]
    override = repo.config.spec.matrix.get(layer)
    r = _Resolver()

    # frequency first: the matrix interval depends on it
    r.put("frequency", row.default_frequency, "matrix")
    if override is not None:
        r.put("frequency", override.change_frequency, "repo")
    r.put("frequency", spec.change_frequency, "composition")
    frequency: str = r.values["frequency"]

    r.put("engine", row.engine, "matrix")
    r.put("reconcile", row.reconcile, "matrix")
    r.put("interval", row.intervals[frequency], "matrix")
    r.put("drift", row.drift, "matrix")
    r.put("approval", row.approval, "matrix")
    r.sources["change_window"] = "matrix"
    r.put("backup", row.backup, "matrix")
    if override is not None:
        r.put("engine", override.engine, "repo")
        r.reconcile(override.reconcile, "repo")
        r.put("drift", override.drift, "repo")
        r.put("approval", override.approval, "repo")
        r.put("change_window", override.change_window, "repo")
        r.put("backup", override.backup, "repo")
    found = repo.modules.get(module.ref)
    r.put("engine", found.inferred if found else None, "inferred")
    r.reconcile(spec.reconcile, "composition")
    r.put("engine", module.engine, "module")
    policies = module.policies
    if policies is not None:
        r.reconcile(policies.reconcile, "module")
        r.put("drift", policies.drift, "module")
        r.put("approval", policies.approval, "module")
        r.put("change_window", policies.change_window, "module")
        r.put("backup", policies.backup, "module")

    strategy: str = r.values["reconcile"]
    interval: int | None = r.values.get("interval")
    if strategy not in SCHEDULED:
        interval = None
        r.sources["interval"] = r.sources["reconcile"]
    elif interval is None:
        interval = FALLBACK_INTERVAL[strategy]
        r.sources["interval"] = "matrix"

    approval: str = r.values["approval"]
    if environment is not None and approval == "environment":
        env = repo.environments.get(environment)
        if env is None:
            raise NotFound(f"no environment {environment!r}")
        approval = "required" if env.spec.protected else "automatic"
        r.sources["approval"] = "environment"

    return Route(
        layer=layer,
        frequency=frequency,
        engine=r.values["engine"],
        reconcile=strategy,
        interval_seconds=interval,
        drift=r.values["drift"],
        approval=approval,
        change_window=r.values.get("change_window"),
        backup=r.values["backup"],
        sources={name: r.sources[name] for name in ROUTE_FIELDS},
    )
