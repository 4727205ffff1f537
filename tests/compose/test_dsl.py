"""The DSL documents on their own: the seed's example, defaults, aliases, and every bad field named
with its line; the published JSON Schema agrees with the models."""

from __future__ import annotations

import textwrap
from pathlib import Path

import jsonschema
import pytest
import yaml

from xcloudflow.compose.dsl import (
    Composition,
    Environment,
    RepoConfig,
    format_duration,
    json_schema,
    parse_duration,
    validate_document,
)
from xcloudflow.compose.yamlsrc import SpecError, SpecIssue, parse
from xcloudflow.errors import Invalid

from .conftest import EXAMPLE

SEED_EXAMPLE = """\
apiVersion: xcloudflow.io/v1alpha1
kind: Composition
metadata:
  name: payments-prod
spec:
  lifecycle: PaaS
  changeFrequency: medium
  modules:
    - ref: modules/aws/rds-cluster
      engine: terraform
      inputs:
        engineVersion: "15"
      policies:
        approval: environment
        backup: pre-change
  dependencies:
    - ref: compositions/foundation/network-prod
  reconcile:
    strategy: periodic
    interval: 6h
"""


def composition(text: str, file: str = "compositions/c.yaml") -> Composition | list[SpecIssue]:
    return validate_document(parse(textwrap.dedent(text).lstrip("\n"), file=file), Composition)


def issues_of(text: str) -> list[str]:
    result = composition(text)
    assert isinstance(result, list), result
    return [str(i) for i in result]


def test_the_seed_example_validates_exactly() -> None:
    result = composition(SEED_EXAMPLE)
    assert isinstance(result, Composition)
    spec = result.spec
    assert spec.lifecycle == "Platform"  # PaaS is an alias
    assert spec.change_frequency == "medium"
    module = spec.modules[0]
    assert (module.ref, module.engine, module.inputs) == (
        "modules/aws/rds-cluster",
        "terraform",
        {"engineVersion": "15"},
    )
    assert module.module_name == "rds-cluster"
    assert module.policies is not None and (module.policies.approval, module.policies.backup) == (
        "environment",
        "pre-change",
    )
    assert spec.dependencies[0].ref == "compositions/foundation/network-prod"
    assert spec.reconcile is not None and (spec.reconcile.strategy, spec.reconcile.interval) == (
        "periodic",
        21600,
    )
    jsonschema.Draft202012Validator(json_schema()).validate(yaml.safe_load(SEED_EXAMPLE))


@pytest.mark.parametrize(
    ("alias", "canonical"),
    [
        ("IaaS", "Foundation"),
        ("PaaS", "Platform"),
        ("App", "Application"),
        ("Config", "Config"),
        ("Ephemeral", "Ephemeral"),
    ],
)
def test_layer_aliases(alias: str, canonical: str) -> None:
    result = composition(SEED_EXAMPLE.replace("lifecycle: PaaS", f"lifecycle: {alias}"))
    assert isinstance(result, Composition) and result.spec.lifecycle == canonical


def test_full_composition_with_every_optional_field() -> None:
    result = composition(
        """
        apiVersion: xcloudflow.io/v1alpha1
        kind: Composition
        metadata: {name: shop, labels: {team: shop}}
        spec:
          lifecycle: Ephemeral
          environments: [dev]
          ttl: 1h30m
          modules:
            - ref: playbooks/setup.yml
              name: setup
              dependsOn: []
              policies: {drift: gc, changeWindow: nights, reconcile: {strategy: periodic, interval: 10m}}
          observation: {command: "test -f /tmp/x", window: 2m, rollbackOnFailure: true}
          backupCommand: "echo backup"
          budget: {max: 2, per: 30m}
        """
    )
    assert isinstance(result, Composition)
    assert result.spec.ttl == 5400
    assert result.spec.observation is not None
    assert (result.spec.observation.window, result.spec.observation.interval) == (120, 10)
    assert result.spec.budget is not None and (result.spec.budget.max, result.spec.budget.per) == (2, 1800)


def test_unknown_engine_names_file_line_and_field() -> None:
    text = SEED_EXAMPLE.replace("engine: terraform", "engine: terrafrom")
    assert issues_of(text) == [
        "compositions/c.yaml:10: spec.modules[0].engine: unknown engine 'terrafrom' (expected one of "
        "'terraform', 'pulumi', 'ansible', 'kubernetes', 'native')"
    ]


def test_every_problem_of_a_document_is_reported_with_its_line() -> None:
    text = (
        SEED_EXAMPLE.replace("name: payments-prod", "name: Payments_Prod")
        .replace("lifecycle: PaaS", "lifecycle: Paas\n  colour: blue")
        .replace("interval: 6h", "interval: 6x")
        .replace("strategy: periodic", "strategy: sometimes")
        .replace("ref: modules/aws/rds-cluster", "ref: ../outside")
    )
    found = issues_of(text)
    assert found == [
        "compositions/c.yaml:4: metadata.name: 'Payments_Prod' is not a valid name (lowercase letters, "
        "digits and '-', at most 63)",
        "compositions/c.yaml:6: spec.lifecycle: unknown lifecycle 'Paas' (expected one of 'Foundation', "
        "'Platform', 'Application', 'Config', 'Ephemeral', 'IaaS', 'PaaS', 'App')",
        "compositions/c.yaml:10: spec.modules[0].ref: '../outside' is not a repository-relative path "
        "(no leading '/', no '.' or '..' segments)",
        "compositions/c.yaml:20: spec.reconcile.strategy: unknown reconcile strategy 'sometimes' (expected "
        "one of 'on_drift', 'periodic', 'continuous', 'on_change')",
        "compositions/c.yaml:21: spec.reconcile.interval: '6x' is not a duration (use 30s, 15m, 6h, 1d or 1h30m)",
        "compositions/c.yaml:7: spec.colour: unknown field 'colour'",
    ]


def test_missing_required_fields_point_at_the_mapping_that_lacks_them() -> None:
    found = issues_of(
        """
        apiVersion: xcloudflow.io/v1alpha1
        kind: Composition
        metadata:
          labels: {a: b}
        spec:
          modules: []
        """
    )
    assert "compositions/c.yaml:3: metadata.name: required field is missing" in found
    assert "compositions/c.yaml:5: spec.lifecycle: required field is missing" in found
    assert "compositions/c.yaml:6: spec.modules: must not be empty" in found


def test_wrong_kind_and_api_version() -> None:
    assert issues_of("apiVersion: xcloudflow.io/v1alpha1\nkind: Environment\n") == [
        "compositions/c.yaml:2: kind: expected kind Composition here, found 'Environment'"
    ]
    found = issues_of(SEED_EXAMPLE.replace("xcloudflow.io/v1alpha1", "xcloudflow.io/v2"))
    assert found == [
        "compositions/c.yaml:1: apiVersion: unknown apiVersion 'xcloudflow.io/v2' (expected one of "
        "'xcloudflow.io/v1alpha1')"
    ]


def test_not_a_mapping_and_empty_file() -> None:
    assert issues_of("- a\n- b\n") == ["compositions/c.yaml:1: expected a mapping, found a list"]
    assert issues_of("") == ["compositions/c.yaml:1: expected a mapping, found an empty file"]


def test_duplicate_keys_are_reported() -> None:
    text = SEED_EXAMPLE.replace(
        "  changeFrequency: medium\n", "  changeFrequency: medium\n  changeFrequency: low\n"
    )
    assert issues_of(text) == [
        "compositions/c.yaml:8: spec.changeFrequency: duplicate key (remove one: YAML keeps only the last)"
    ]


@pytest.mark.parametrize(
    ("text", "line", "fragment"),
    [
        ("a: [1, 2\nb: 3\n", 2, "did not find expected ',' or ']'"),
        ("a: 1\n  b: 2\n", 2, "mapping values are not allowed in this context"),
        ("a: 1\n---\nb: 2\n", 2, "expected a single document"),
        ("a: 'unterminated\n", 2, "found unexpected end of stream"),
        ("\ta: 1\n", 1, "found character that cannot start any token"),
    ],
)
def test_invalid_yaml_names_file_and_line(text: str, line: int, fragment: str) -> None:
    with pytest.raises(SpecError) as caught:
        parse(text, file="compositions/bad.yaml")
    issue = caught.value.issues[0]
    assert (issue.file, issue.line) == ("compositions/bad.yaml", line)
    assert issue.message.startswith("invalid YAML: ")
    assert fragment in issue.message, issue.message
    assert isinstance(caught.value, Invalid) and caught.value.code == "invalid_spec"
    assert caught.value.details == {"issues": [issue.to_json()]}


def test_spec_error_message_counts_the_other_issues() -> None:
    error = SpecError([SpecIssue("b.yaml", 2, "x", "second"), SpecIssue("a.yaml", 9, None, "first")])
    assert error.message == "a.yaml:9: first (and 1 more)"
    assert [i.file for i in error.issues] == ["a.yaml", "b.yaml"]


def test_observation_needs_exactly_one_probe() -> None:
    base = SEED_EXAMPLE + "  observation: {PROBE}\n"
    assert issues_of(base.replace("PROBE", "window: 5m")) == [
        "compositions/c.yaml:21: spec.observation: give exactly one of url or command"
    ]
    both = base.replace("PROBE", "url: http://x/healthz, command: 'true'")
    assert "give exactly one of url or command" in issues_of(both)[0]
    assert "must start with http://" in issues_of(base.replace("PROBE", "url: ftp://x"))[0]


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("30s", 30), ("15m", 900), ("6h", 21600), ("1d", 86400), ("1h30m", 5400), ("1d2h3m4s", 93784)],
)
def test_durations(text: str, seconds: int) -> None:
    assert parse_duration(text) == seconds
    assert parse_duration(format_duration(seconds)) == seconds


@pytest.mark.parametrize("text", ["", "5", "m", "1w", "0s", "1m1h", "-5m", 5, True, None])
def test_invalid_durations(text: object) -> None:
    with pytest.raises(ValueError, match="duration"):
        parse_duration(text)


def test_environment_and_repo_config_documents() -> None:
    env = validate_document(
        parse((EXAMPLE / "envs/prod/environment.yaml").read_text(), file="e.yaml"), Environment
    )
    assert isinstance(env, Environment)
    assert env.spec.protected and env.spec.pool == "embedded" and len(env.spec.compositions) == 4
    config = validate_document(parse((EXAMPLE / ".xcf.yaml").read_text(), file=".xcf.yaml"), RepoConfig)
    assert isinstance(config, RepoConfig)
    assert config.spec.state_backend.project == "platform"
    assert [(s.name, s.enforcement) for s in config.spec.policy_sets] == [
        ("security", "mandatory"),
        ("cost", "advisory"),
    ]
    assert config.spec.change_windows["weeknights"].timezone == "Asia/Shanghai"
    assert RepoConfig().spec.defaults.concurrency == 4  # every key is optional


def test_repo_config_problems() -> None:
    doc = parse(
        textwrap.dedent(
            """
            spec:
              matrix:
                IaaS: {approval: never}
                Kernel: {engine: terraform}
              changeWindows:
                nights: {days: [mon, funday], start: "25:00", end: "05:00", timezone: Mars/Olympus}
              defaults: {concurrency: 0}
            """
        ),
        file=".xcf.yaml",
    )
    result = validate_document(doc, RepoConfig)
    assert isinstance(result, list)
    found = {str(i) for i in result}
    assert any(
        f.startswith(".xcf.yaml:4: spec.matrix.IaaS.approval: unknown approval 'never'") for f in found
    ), found
    assert any(f.startswith(".xcf.yaml:5: spec.matrix.Kernel: unknown lifecycle 'Kernel'") for f in found), (
        found
    )
    assert any(f.startswith(".xcf.yaml:7: spec.changeWindows.nights.days[1]:") for f in found), found
    assert ".xcf.yaml:7: spec.changeWindows.nights.start: '25:00' is not a time of day HH:MM" in found
    assert any("unknown time zone 'Mars/Olympus'" in f and f.startswith(".xcf.yaml:7:") for f in found), found
    assert any(f.startswith(".xcf.yaml:8: spec.defaults.concurrency:") for f in found), found


def test_json_schema_is_valid_and_agrees_with_the_models() -> None:
    schema = json_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert {"Composition", "Environment", "RepoConfig"} <= set(schema["$defs"])
    validator = jsonschema.Draft202012Validator(schema)
    for path in sorted(Path(EXAMPLE).rglob("*.yaml")):
        if "compositions" in path.parts or "envs" in path.parts or path.name == ".xcf.yaml":
            validator.validate(yaml.safe_load(path.read_text()))
    bad = yaml.safe_load(SEED_EXAMPLE.replace("engine: terraform", "engine: terrafrom"))
    assert not validator.is_valid(bad)
    assert not validator.is_valid(yaml.safe_load(SEED_EXAMPLE.replace("interval: 6h", "interval: 6x")))
