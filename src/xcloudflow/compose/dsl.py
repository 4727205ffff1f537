"""The compose DSL (seed 001 section 2): `Composition`, `Environment` and `RepoConfig` documents.

Pydantic models are the one definition of the language: they validate the YAML, give the typed values
the router and planner read, and publish the JSON Schema (`xcf compose schema`). Validation errors
are turned into `SpecIssue`s naming the file, the line and the field (`validate_document`).

This module checks each document on its own; whether a module path exists or an environment is
known is the loader's job (it sees the whole repository). It never touches the filesystem.
"""

from __future__ import annotations

import re
import zoneinfo
from typing import Annotated, Any, Literal, TypeVar, get_args

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    WithJsonSchema,
    field_validator,
    model_validator,
)
from pydantic.json_schema import models_json_schema

from xcloudflow.compose.yamlsrc import SpecIssue, YamlDocument, dotted

API_VERSION = "xcloudflow.io/v1alpha1"

LayerName = Literal["Foundation", "Platform", "Application", "Config", "Ephemeral"]
LAYERS: tuple[str, ...] = get_args(LayerName)
LAYER_ALIASES = {"IaaS": "Foundation", "PaaS": "Platform", "App": "Application"}
FrequencyName = Literal["low", "medium", "high"]
FREQUENCIES: tuple[str, ...] = get_args(FrequencyName)
EngineName = Literal["terraform", "pulumi", "ansible", "kubernetes", "native"]
ENGINES: tuple[str, ...] = get_args(EngineName)
StrategyName = Literal["on_drift", "periodic", "continuous", "on_change"]
STRATEGIES: tuple[str, ...] = get_args(StrategyName)
DriftName = Literal["alert", "correct", "gc"]
DRIFTS: tuple[str, ...] = get_args(DriftName)
ApprovalName = Literal["required", "environment", "automatic", "none"]
APPROVALS: tuple[str, ...] = get_args(ApprovalName)
BackupName = Literal["pre-change", "none"]
BACKUPS: tuple[str, ...] = get_args(BackupName)
EnforcementName = Literal["advisory", "mandatory"]
DayName = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]

NAME_PATTERN = r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$"
# A repo-relative path: no leading slash, no "..", no backslash, no empty segment (JSON Schema only;
# pydantic checks it with _check_ref, as its regex engine has no look-ahead).
REF_PATTERN = r"^(?!/)(?!.*(^|/)\.\.(/|$))(?!.*//)[^\\\x00]+$"
_DURATION = re.compile(r"^(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$")
_CLOCK = re.compile(r"^([01]\d|2[0-3]):[0-5]\d$")


def parse_duration(value: Any) -> int:
    """`30s`, `15m`, `6h`, `1d`, `1h30m` -> seconds; anything else is an error a person can read."""
    if isinstance(value, bool) or not isinstance(value, str):
        raise ValueError(f"a duration is a string like 30s, 15m, 6h, 1d or 1h30m, not {value!r}")
    match = _DURATION.match(value.strip())
    if not value.strip() or match is None:
        raise ValueError(f"{value!r} is not a duration (use 30s, 15m, 6h, 1d or 1h30m)")
    days, hours, minutes, seconds = (int(g) if g else 0 for g in match.groups())
    total = days * 86400 + hours * 3600 + minutes * 60 + seconds
    if total <= 0:
        raise ValueError(f"duration {value!r} must be longer than zero")
    return total


def format_duration(seconds: int) -> str:
    """3600 -> "1h", 5400 -> "1h30m" (the inverse of parse_duration, for display)."""
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if seconds >= size:
            parts.append(f"{seconds // size}{unit}")
            seconds %= size
    return "".join(parts) or "0s"


def _canonical_layer(value: Any) -> Any:
    return LAYER_ALIASES.get(value, value) if isinstance(value, str) else value


def _check_ref(value: str) -> str:
    parts = value.rstrip("/").split("/")
    if (
        not value
        or value.startswith("/")
        or "\\" in value
        or "\x00" in value
        or any(p in ("", ".", "..") for p in parts)
    ):
        raise ValueError(
            f"{value!r} is not a repository-relative path (no leading '/', no '.' or '..' segments)"
        )
    return value.rstrip("/")


def _check_timezone(value: str) -> str:
    try:
        zoneinfo.ZoneInfo(value)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"unknown time zone {value!r} (use an IANA name like Europe/Paris)") from exc
    return value


Duration = Annotated[
    int,
    BeforeValidator(parse_duration),
    WithJsonSchema({"type": "string", "pattern": r"^(\d+d)?(\d+h)?(\d+m)?(\d+s)?$", "examples": ["6h"]}),
]
Layer = Annotated[
    LayerName,
    BeforeValidator(_canonical_layer),
    WithJsonSchema({"type": "string", "enum": [*LAYERS, *LAYER_ALIASES]}),
]
Name = Annotated[str, Field(pattern=NAME_PATTERN)]
Ref = Annotated[
    str,
    AfterValidator(_check_ref),
    WithJsonSchema({"type": "string", "minLength": 1, "pattern": REF_PATTERN}),
]
Clock = Annotated[str, Field(pattern=_CLOCK.pattern)]


def _strip_yaml_suffix(value: Any) -> Any:
    if isinstance(value, str):
        for suffix in (".yaml", ".yml"):
            if value.endswith(suffix):
                return value[: -len(suffix)]
        return value.rstrip("/")
    return value


CompositionRef = Annotated[Ref, BeforeValidator(_strip_yaml_suffix)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=False)


class Metadata(_Model):
    name: Name
    labels: dict[str, str] = Field(default_factory=dict)


class Reconcile(_Model):
    strategy: StrategyName | None = None
    interval: Duration | None = None


class ModulePolicies(_Model):
    """Per-module overrides of the route (the highest precedence)."""

    approval: ApprovalName | None = None
    backup: BackupName | None = None
    drift: DriftName | None = None
    change_window: str | None = Field(None, alias="changeWindow")
    reconcile: Reconcile | None = None


class Module(_Model):
    ref: Ref
    name: Name | None = None
    engine: EngineName | None = None
    inputs: dict[str, Any] = Field(default_factory=dict)
    depends_on: list[str] = Field(default_factory=list, alias="dependsOn")
    policies: ModulePolicies | None = None

    @property
    def module_name(self) -> str:
        """The explicit name, else the last path segment of ref without extension, made a NAME."""
        if self.name:
            return self.name
        return default_module_name(self.ref)


def default_module_name(ref: str) -> str:
    last = ref.rstrip("/").rsplit("/", 1)[-1]
    stem = last.rsplit(".", 1)[0] if "." in last[1:] else last
    return re.sub(r"[^a-z0-9-]+", "-", stem.lower()).strip("-") or "module"


class Dependency(_Model):
    ref: CompositionRef


class Observation(_Model):
    url: str | None = None
    command: str | None = None
    window: Duration = 300
    interval: Duration = 10
    rollback_on_failure: bool = Field(False, alias="rollbackOnFailure")

    @model_validator(mode="after")
    def _one_probe(self) -> Observation:
        if (self.url is None) == (self.command is None):
            raise ValueError("give exactly one of url or command")
        if self.url is not None and not self.url.startswith(("http://", "https://")):
            raise ValueError(f"url {self.url!r} must start with http:// or https://")
        return self


class Budget(_Model):
    max: int = Field(ge=1)
    per: Duration


class CompositionSpec(_Model):
    lifecycle: Layer
    change_frequency: FrequencyName | None = Field(None, alias="changeFrequency")
    environments: list[Name] | None = None
    modules: list[Module] = Field(min_length=1)
    dependencies: list[Dependency] = Field(default_factory=list)
    reconcile: Reconcile | None = None
    ttl: Duration | None = None
    observation: Observation | None = None
    backup_command: str | None = Field(None, alias="backupCommand")
    budget: Budget | None = None


class Composition(_Model):
    api_version: Literal["xcloudflow.io/v1alpha1"] = Field(alias="apiVersion")
    kind: Literal["Composition"]
    metadata: Metadata
    spec: CompositionSpec


class EnvironmentComposition(_Model):
    ref: CompositionRef
    inputs: dict[str, Any] = Field(default_factory=dict)


class EnvironmentSpec(_Model):
    protected: bool = False
    pool: Name = "embedded"
    inputs: dict[str, Any] = Field(default_factory=dict)
    compositions: list[EnvironmentComposition] = Field(min_length=1)


class Environment(_Model):
    api_version: Literal["xcloudflow.io/v1alpha1"] = Field(alias="apiVersion")
    kind: Literal["Environment"]
    metadata: Metadata
    spec: EnvironmentSpec


class StateBackend(_Model):
    project: Name = "compose"


class Defaults(_Model):
    pool: Name = "embedded"
    concurrency: int = Field(4, ge=1, le=256)


class MatrixOverride(_Model):
    """Overrides of one layer's row of the built-in decision matrix."""

    engine: EngineName | None = None
    change_frequency: FrequencyName | None = Field(None, alias="changeFrequency")
    reconcile: Reconcile | None = None
    drift: DriftName | None = None
    approval: ApprovalName | None = None
    change_window: str | None = Field(None, alias="changeWindow")
    backup: BackupName | None = None


class ChangeWindow(_Model):
    days: list[DayName] = Field(min_length=1)
    start: Clock
    end: Clock
    timezone: Annotated[str, AfterValidator(_check_timezone)] = "UTC"


class PolicySet(_Model):
    name: Name
    path: Ref
    enforcement: EnforcementName = "advisory"


class RepoConfigSpec(_Model):
    state_backend: StateBackend = Field(default_factory=StateBackend, alias="stateBackend")
    defaults: Defaults = Field(default_factory=Defaults)
    matrix: dict[Layer, MatrixOverride] = Field(default_factory=dict)
    change_windows: dict[Name, ChangeWindow] = Field(default_factory=dict, alias="changeWindows")
    policy_sets: list[PolicySet] = Field(default_factory=list, alias="policySets")
    budget: dict[str, float] = Field(default_factory=dict)
    costs: dict[str, float] = Field(default_factory=dict)
    approvers: list[str] = Field(default_factory=list)
    allow_self_approval: bool = Field(False, alias="allowSelfApproval")
    credentials: dict[str, dict[str, str]] = Field(default_factory=dict)

    @field_validator("matrix", mode="before")
    @classmethod
    def _canonical_keys(cls, value: Any) -> Any:
        if isinstance(value, dict):
            return {_canonical_layer(k): v for k, v in value.items()}
        return value


class RepoConfig(_Model):
    api_version: Literal["xcloudflow.io/v1alpha1"] = Field("xcloudflow.io/v1alpha1", alias="apiVersion")
    kind: Literal["RepoConfig"] = "RepoConfig"
    spec: RepoConfigSpec = Field(default_factory=RepoConfigSpec)


Document = Composition | Environment | RepoConfig
M = TypeVar("M", Composition, Environment, RepoConfig)


# ------------------------------------------------------------------------------- errors with lines


def _describe(error: Any) -> str:
    """A pydantic error in words: what was found, what is expected."""
    kind = error["type"]
    value = error.get("input")
    ctx = error.get("ctx") or {}
    loc = [p for p in error["loc"] if not (isinstance(p, str) and "[" in p)]
    last = next((p for p in reversed(loc) if isinstance(p, str)), "")
    if error["loc"] and error["loc"][-1] == "[key]" and len(loc) >= 2 and loc[-2] == "matrix":
        last = "lifecycle"
    if kind == "missing":
        return "required field is missing"
    if kind == "extra_forbidden":
        return f"unknown field {last!r}"
    if kind in ("literal_error", "enum"):
        expected = ctx.get("expected", "")
        what = {
            "engine": "engine",
            "lifecycle": "lifecycle",
            "days": "day",
            "changeFrequency": "change frequency",
            "strategy": "reconcile strategy",
            "drift": "drift policy",
            "approval": "approval",
            "backup": "backup policy",
            "enforcement": "enforcement",
            "apiVersion": "apiVersion",
            "kind": "kind",
        }.get(last, "value")
        if what == "lifecycle":
            expected = ", ".join(f"'{name}'" for name in (*LAYERS, *LAYER_ALIASES))
            what = "lifecycle"
        return f"unknown {what} {value!r} (expected one of {expected.replace(' or ', ', ')})"
    if kind == "string_pattern_mismatch":
        if last in ("name", "pool", "project") or (len(loc) >= 2 and loc[-2] in ("changeWindows",)):
            return f"{value!r} is not a valid name (lowercase letters, digits and '-', at most 63)"
        if last in ("start", "end"):
            return f"{value!r} is not a time of day HH:MM"
        return f"{value!r} is not a repository-relative path (no leading '/', no '..')"
    if kind == "value_error":
        return str(ctx.get("error", error["msg"]))
    if kind in ("dict_type", "model_type"):
        return f"expected a mapping, found {type(value).__name__} {value!r}"
    if kind == "list_type":
        return f"expected a list, found {type(value).__name__} {value!r}"
    if kind == "too_short":
        return "must not be empty"
    return f"{error['msg']} (found {value!r})" if "input" in error else str(error["msg"])


_ALIASES_OF = {canonical: alias for alias, canonical in LAYER_ALIASES.items()}


def as_written(doc: YamlDocument, loc: tuple[str | int, ...]) -> tuple[str | int, ...]:
    """The path as the YAML spells it: a layer key the model canonicalized (`Foundation`) is shown
    as written (`IaaS`), so the line and the field match the file."""
    path: tuple[str | int, ...] = ()
    for part in loc:
        if (*path, part) not in doc.lines and part in _ALIASES_OF and (*path, _ALIASES_OF[part]) in doc.lines:
            part = _ALIASES_OF[part]
        path = (*path, part)
    return path


def validate_document(doc: YamlDocument, model: type[M]) -> M | list[SpecIssue]:
    """The document as `model`, or every issue found, each with its file, line and field."""
    issues: list[SpecIssue] = [
        doc.issue(path, "duplicate key (remove one: YAML keeps only the last)") for path, _ in doc.duplicates
    ]
    if not isinstance(doc.data, dict):
        found = "an empty file" if doc.data is None else f"a {type(doc.data).__name__}"
        return [
            *issues,
            SpecIssue(doc.file, doc.line_of(()) or 1, None, f"expected a mapping, found {found}"),
        ]
    kind = doc.data.get("kind")
    expected_kind = model.__name__
    if kind is not None and kind != expected_kind:
        return [*issues, doc.issue(("kind",), f"expected kind {expected_kind} here, found {kind!r}")]
    try:
        value = model.model_validate(doc.data)
    except ValidationError as exc:
        for error in exc.errors():
            loc = tuple(p for p in error["loc"] if isinstance(p, str | int))
            # Drop pydantic's branch labels (e.g. "function-before[...]"), keep the data path.
            loc = as_written(doc, tuple(p for p in loc if not (isinstance(p, str) and "[" in p)))
            issues.append(SpecIssue(doc.file, doc.line_of(loc), dotted(loc) or None, _describe(error)))
        return issues
    return issues or value


def json_schema() -> dict[str, Any]:
    """One JSON Schema (draft 2020-12) for every document kind, with `$defs` and `oneOf` by kind."""
    top, defs = models_json_schema(
        [(Composition, "validation"), (Environment, "validation"), (RepoConfig, "validation")],
        by_alias=True,
        ref_template="#/$defs/{model}",
    )
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "https://xcloudflow.io/schemas/compose/v1alpha1.json",
        "title": "XCloudFlow compose documents (apiVersion xcloudflow.io/v1alpha1)",
        "oneOf": [top[(m, "validation")] for m in (Composition, Environment, RepoConfig)],
        "$defs": defs.get("$defs", {}),
    }
