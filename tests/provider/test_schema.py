"""The provider's schemas are exactly the seed's (section 1a), and its pure helpers behave.

No server and no Terraform here: these call the classes the plugin serves, as the `tf` package does.
"""

from __future__ import annotations

from typing import Any

import pytest
from tf.gen import tfplugin_pb2 as pb
from tf.schema import Attribute, Block, Schema
from tf.types import Unknown
from tf.utils import Diagnostics

from xcloudflow.provider.blocks import ListNestedBlock, SingleNestedBlock
from xcloudflow.provider.data_sources import ConfigDataSource
from xcloudflow.provider.policy import ReleasePolicyResource, policy_rules
from xcloudflow.provider.provider import ConfluxProvider
from xcloudflow.provider.resources import (
    ConfigResource,
    ReleaseResource,
    config_state,
    idempotency_key,
    parse_release_id,
)


def flags(schema_or_block: Schema | Block) -> dict[str, tuple[str, ...]]:
    """attribute name -> the flags set on it (required/optional/computed/sensitive/replace)."""
    out = {}
    for a in schema_or_block.attributes:
        assert isinstance(a, Attribute)
        names = ("required", "optional", "computed", "sensitive", "requires_replace")
        out[a.name] = tuple(n for n in names if getattr(a, n))
    return out


def blocks(schema_or_block: Schema | Block) -> dict[str, Any]:
    return {b.type_name: b for b in schema_or_block.block_types}


def test_provider_identity_and_types() -> None:
    provider = ConfluxProvider()
    assert provider.full_name() == "registry.xcloudflow.local/xcloudflow/conflux"
    prefix = provider.get_model_prefix()
    assert sorted(prefix + r.get_name() for r in provider.get_resources()) == [
        "conflux_config",
        "conflux_release",
        "conflux_release_policy",
    ]
    assert [prefix + d.get_name() for d in provider.get_data_sources()] == ["conflux_config"]
    assert flags(provider.get_provider_schema(Diagnostics())) == {
        "server_endpoint": ("optional",),
        "auth_token": ("optional", "sensitive"),
    }


def test_config_schema_is_the_seeds() -> None:
    schema = ConfigResource.get_schema()
    assert flags(schema) == {
        "id": ("computed",),
        "tenant": ("required", "requires_replace"),
        "application": ("required", "requires_replace"),
        "environment": ("required", "requires_replace"),
        "name": ("required", "requires_replace"),
        "format": ("required",),
        "schema": ("optional",),
    }
    retention = blocks(schema)["retention_policy"]
    assert isinstance(retention, SingleNestedBlock)
    assert retention.to_pb().nesting == pb.Schema.NestedBlock.NestingMode.SINGLE
    assert flags(retention.block) == {"strategy": ("required",)}
    rules = blocks(retention.block)["rules"]
    assert isinstance(rules, ListNestedBlock)
    assert rules.to_pb().nesting == pb.Schema.NestedBlock.NestingMode.LIST
    assert flags(rules.block) == {"type": ("required",), "keep": ("required",)}


def test_release_schema_is_the_seeds() -> None:
    schema = ReleaseResource.get_schema()
    assert flags(schema) == {
        "config_id": ("required", "requires_replace"),
        "content": ("required", "requires_replace"),
        "description": ("optional", "requires_replace"),
        "is_stable": ("optional",),
        "version_id": ("computed",),
        "version": ("computed",),
    }
    assert schema.block_types == []


def test_release_policy_schema_is_the_seeds() -> None:
    schema = ReleasePolicyResource.get_schema()
    assert flags(schema) == {"config_id": ("required", "requires_replace")}
    rule = blocks(schema)["rule"]
    assert isinstance(rule, ListNestedBlock)
    assert flags(rule.block) == {
        "priority": ("required",),
        "version_id": ("required",),
        "labels": ("optional",),
    }
    labels = next(a for a in rule.block.attributes if a.name == "labels")
    assert labels.type.tf_type() == b'["map","string"]'


def test_data_source_schema() -> None:
    assert flags(ConfigDataSource.get_schema()) == {
        "tenant": ("required",),
        "application": ("required",),
        "environment": ("required",),
        "name": ("required",),
        "id": ("computed",),
        "format": ("computed",),
        "schema": ("computed",),
        "latest_version": ("computed",),
        "stable_version": ("computed",),
        "stable_version_id": ("computed",),
        "content": ("computed",),
    }


def test_schemas_serialize_for_the_plugin_protocol() -> None:
    for klass in (ConfigResource, ReleaseResource, ReleasePolicyResource, ConfigDataSource):
        assert klass.get_schema().to_pb().block.attributes


# --------------------------------------------------------------------------- nested blocks


def test_list_block_round_trip_keeps_order_and_unknowns() -> None:
    block = ListNestedBlock(
        "rule", Block(attributes=[Attribute("priority", _number()), Attribute("v", _string())])
    )
    value = [{"priority": 10, "v": "b"}, {"priority": 0, "v": Unknown}]
    assert block.decode(block.encode(value)) == value
    assert block.semantically_equal(value, list(value))
    assert not block.semantically_equal(value, list(reversed(value)))
    assert block.encode(None) is None and block.decode(Unknown) is Unknown


def test_single_block_round_trip_with_nested_list() -> None:
    block = ConfigResource.get_schema().block_types[0]
    value = {"strategy": "AND", "rules": [{"type": "count", "keep": 50}, {"type": "days", "keep": 180}]}
    assert block.decode(block.encode(value)) == value
    assert block.encode(None) is None
    assert not block.semantically_equal(value, {**value, "strategy": "OR"})


def _number() -> Any:
    from tf.types import Number

    return Number()


def _string() -> Any:
    from tf.types import String

    return String()


# --------------------------------------------------------------------------- validation


def errors(resource: Any, config: dict[str, Any], type_name: str) -> list[str]:
    diags = Diagnostics()
    resource.validate(diags, type_name, config)
    return [d.summary for d in diags.diagnostics if d.severity == "error"]


def test_config_validation_names_each_bad_value() -> None:
    res = ConfigResource(ConfluxProvider())
    good = {
        "tenant": "my-tenant",
        "application": "app-A",
        "environment": "production",
        "name": "database.toml",
        "format": "toml",
        "schema": None,
        "id": None,
        "retention_policy": {"strategy": "AND", "rules": [{"type": "count", "keep": 50}]},
    }
    assert errors(res, good, "conflux_config") == []
    assert errors(res, {**good, "tenant": Unknown, "format": Unknown}, "conflux_config") == []
    bad = {
        **good,
        "tenant": "-bad",
        "format": "xml",
        "retention_policy": {"strategy": "XOR", "rules": [{"type": "weeks", "keep": 0}]},
    }
    assert errors(res, bad, "conflux_config") == [
        "Invalid tenant '-bad'",
        "Unknown format 'xml'",
        "Unknown retention strategy 'XOR'",
        "Unknown retention rule type 'weeks'",
        "Invalid retention keep 0",
    ]


def test_policy_validation_refuses_duplicate_priorities() -> None:
    res = ReleasePolicyResource(ConfluxProvider())
    rule = {"priority": 10, "version_id": "v", "labels": None}
    assert (
        errors(res, {"config_id": "c", "rule": [rule, {**rule, "priority": 0}]}, "conflux_release_policy")
        == []
    )
    assert errors(res, {"config_id": "c", "rule": [rule, rule]}, "conflux_release_policy") == [
        "Two rules have priority 10"
    ]


def test_operations_without_configuration_are_diagnostics_not_crashes() -> None:
    from tf.iface import ReadContext

    ctx = ReadContext(Diagnostics(), "conflux_config")
    current = {"id": "x", "tenant": "t", "application": "a", "environment": "e", "name": "n"}
    assert ConfigResource(ConfluxProvider()).read(ctx, current) == current
    assert ctx.diagnostics.has_errors()


def test_provider_needs_a_token(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("XCF_TOKEN", raising=False)
    provider, diags = ConfluxProvider(), Diagnostics()
    provider.configure_provider(diags, {"server_endpoint": "http://127.0.0.1:1", "auth_token": None})
    assert [d.summary for d in diags.diagnostics] == ["No auth_token for the conflux provider"]
    monkeypatch.setenv("XCF_TOKEN", "from-env")
    provider.configure_provider(diags := Diagnostics(), {"server_endpoint": None, "auth_token": Unknown})
    assert not diags.has_errors() and provider.client is not None
    provider.validate_config(diags := Diagnostics(), {"server_endpoint": "ftp://x", "auth_token": None})
    assert diags.has_errors()


# --------------------------------------------------------------------------- helpers


def test_idempotency_key_covers_every_field() -> None:
    base = idempotency_key("c", "x = 1", "d", True)
    assert base == idempotency_key("c", "x = 1", "d", True)
    assert len(base) == 64
    others = {
        idempotency_key("c2", "x = 1", "d", True),
        idempotency_key("c", "x = 2", "d", True),
        idempotency_key("c", "x = 1", None, True),
        idempotency_key("c", "x = 1", "d", False),
    }
    assert base not in others and len(others) == 4


def test_parse_release_id() -> None:
    assert parse_release_id("0b5e/3") == ("0b5e", 3)
    for bad in ("0b5e", "/3", "0b5e/x", "0b5e/"):
        with pytest.raises(ValueError):
            parse_release_id(bad)


def test_config_state_keeps_equivalent_spellings() -> None:
    out = {
        "id": "i",
        "tenant": "t",
        "application": "a",
        "environment": "e",
        "name": "n",
        "format": "json",
        "schema": '{"type": "object"}',
        "retention": {"strategy": "OR", "rules": [{"type": "days", "keep": 7}, {"type": "count", "keep": 3}]},
    }
    mine = {
        "schema": '{\n  "type":"object"\n}\n',
        "retention_policy": {
            "strategy": "OR",
            "rules": [{"type": "count", "keep": 3}, {"type": "days", "keep": 7}],
        },
    }
    state = config_state(out, mine)
    assert state["schema"] == mine["schema"]
    assert state["retention_policy"] is mine["retention_policy"]
    fresh = config_state({**out, "schema": None, "retention": None}, mine)
    assert fresh["schema"] is None and fresh["retention_policy"] is None
    imported = config_state(out, None)
    assert imported["retention_policy"]["rules"][0] == {"type": "days", "keep": 7}


def test_policy_rules_keep_configured_order_unless_they_differ() -> None:
    server = {
        "rules": [
            {
                "name": "rule-10",
                "priority": 10,
                "version_id": "v4",
                "version": 4,
                "labels": {"canary": "true"},
            },
            {"name": "rule-0", "priority": 0, "version_id": "v3", "version": 3, "labels": {}},
        ]
    }
    mine = [
        {"priority": 0, "version_id": "v3", "labels": None},
        {"priority": 10, "version_id": "v4", "labels": {"canary": "true"}},
    ]
    assert policy_rules(server, mine) is mine
    changed = [{**mine[0], "version_id": "v2"}, mine[1]]
    assert [r["priority"] for r in policy_rules(server, changed)] == [10, 0]
    assert policy_rules({"rules": []}, None) == []
