"""Pulumi's preview JSON (the documented PreviewDigest of `pulumi preview --json`) parsed into a NodePlan."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.engines.conftest import RecordingIO, write_tree
from xcloudflow.engines.base import EngineFailed, EngineSpec, EngineUnavailable
from xcloudflow.engines.pulumi import PulumiEngine, config_args, parse_preview, preview_errors
from xcloudflow.errors import Invalid

STACK = "urn:pulumi:dev::shop::pulumi:pulumi:Stack::shop-dev"
PROVIDER = "urn:pulumi:dev::shop::pulumi:providers:aws::default_6_0_0"
BUCKET = "urn:pulumi:dev::shop::aws:s3/bucket:Bucket::assets"
QUEUE = "urn:pulumi:dev::shop::aws:sqs/queue:Queue::orders"
OLD_TABLE = "urn:pulumi:dev::shop::aws:dynamodb/table:Table::legacy"
DB = "urn:pulumi:dev::shop::aws:rds/instance:Instance::db"
CHILD = "urn:pulumi:dev::shop::my:component:Web$aws:s3/bucketObject:BucketObject::index.html"


def state(urn: str, type_: str, **inputs: Any) -> dict[str, Any]:
    return {"urn": urn, "custom": True, "type": type_, "inputs": inputs, "outputs": {}, "parent": STACK}


PREVIEW: dict[str, Any] = {
    "config": {"aws:region": "eu-west-1", "shop:dbPassword": "[secret]"},
    "steps": [
        {
            "op": "same",
            "urn": STACK,
            "newState": {"urn": STACK, "custom": False, "type": "pulumi:pulumi:Stack"},
        },
        {"op": "create", "urn": PROVIDER, "newState": state(PROVIDER, "pulumi:providers:aws")},
        {"op": "create", "urn": BUCKET, "newState": state(BUCKET, "aws:s3/bucket:Bucket", acl="private")},
        {
            "op": "update",
            "urn": QUEUE,
            "oldState": state(QUEUE, "aws:sqs/queue:Queue", delaySeconds=0),
            "newState": state(QUEUE, "aws:sqs/queue:Queue", delaySeconds=5),
            "diffReasons": ["delaySeconds"],
            "detailedDiff": {"delaySeconds": {"kind": "update", "inputDiff": True}},
        },
        {"op": "delete", "urn": OLD_TABLE, "oldState": state(OLD_TABLE, "aws:dynamodb/table:Table")},
        {
            "op": "create-replacement",
            "urn": DB,
            "newState": state(DB, "aws:rds/instance:Instance", engineVersion="16"),
            "replaceReasons": ["engineVersion"],
        },
        {"op": "replace", "urn": DB, "newState": state(DB, "aws:rds/instance:Instance", engineVersion="16")},
        {
            "op": "delete-replaced",
            "urn": DB,
            "oldState": state(DB, "aws:rds/instance:Instance", engineVersion="15"),
        },
        {"op": "same", "urn": CHILD},
    ],
    "duration": 1234567890,
    "changeSummary": {"create": 2, "update": 1, "delete": 1, "replace": 1, "same": 2},
}


def test_preview_steps_become_resource_changes() -> None:
    plan = parse_preview(PREVIEW)
    assert plan.engine == "pulumi" and plan.has_changes
    rows = [(rc.address, rc.type, rc.actions) for rc in plan.resource_changes]
    assert rows == [
        (BUCKET, "aws:s3/bucket:Bucket", ["create"]),
        (QUEUE, "aws:sqs/queue:Queue", ["update"]),
        (OLD_TABLE, "aws:dynamodb/table:Table", ["delete"]),
        (DB, "aws:rds/instance:Instance", ["create", "delete"]),  # create-before-delete, Pulumi's default
        (CHILD, "aws:s3/bucketObject:BucketObject", ["no-op"]),  # type read from the URN
    ]
    assert plan.summary == {"add": 2, "change": 1, "destroy": 2}
    by_urn = {rc.address: rc for rc in plan.resource_changes}
    assert by_urn[QUEUE].detail == {"urn": QUEUE, "ops": ["update"], "reasons": ["delaySeconds"]}
    db_detail = by_urn[DB].detail
    assert db_detail is not None
    assert db_detail["ops"] == ["create-replacement", "replace", "delete-replaced"]
    assert db_detail["reasons"] == ["engineVersion"]
    assert json.loads(json.dumps(plan.to_json()))["summary"] == plan.summary


def test_delete_before_replace_and_text_input() -> None:
    doc = {
        "steps": [
            {"op": "delete-replaced", "urn": DB, "oldState": state(DB, "aws:rds/instance:Instance")},
            {"op": "replace", "urn": DB},
            {"op": "create-replacement", "urn": DB, "newState": state(DB, "aws:rds/instance:Instance")},
        ]
    }
    plan = parse_preview(json.dumps(doc))
    assert [rc.actions for rc in plan.resource_changes] == [["delete", "create"]]


def test_a_preview_without_changes() -> None:
    doc = {
        "steps": [{"op": "same", "urn": STACK}, {"op": "same", "urn": BUCKET}],
        "changeSummary": {"same": 2},
    }
    plan = parse_preview(doc)
    assert not plan.has_changes
    assert plan.summary == {"add": 0, "change": 0, "destroy": 0}
    assert [rc.actions for rc in plan.resource_changes] == [["no-op"]]
    assert not parse_preview({}).has_changes  # steps are omitted when empty


def test_reads_and_imports_are_not_changes() -> None:
    doc = {
        "steps": [{"op": "read", "urn": BUCKET}, {"op": "import", "urn": QUEUE}, {"op": "refresh", "urn": DB}]
    }
    plan = parse_preview(doc)
    assert [rc.actions for rc in plan.resource_changes] == [["read"], ["no-op"], ["read"]]
    assert not plan.has_changes


@pytest.mark.parametrize(
    ("doc", "why"),
    [
        ("{not json", "not JSON"),
        ("[1, 2]", "not a JSON object"),
        ({"steps": {"op": "create"}}, "'steps' is not a list"),
        ({"steps": ["create"]}, r"steps\[0\] is not an object"),
        ({"steps": [{"op": "create"}]}, r"steps\[0\] has no urn"),
        ({"steps": [{"op": "explode", "urn": BUCKET}]}, r"steps\[0\] .*unknown op 'explode'"),
    ],
)
def test_malformed_previews_are_refused(doc: Any, why: str) -> None:
    with pytest.raises(Invalid, match=why):
        parse_preview(doc)


def test_error_diagnostics_are_collected() -> None:
    doc = {
        "diagnostics": [
            {"urn": BUCKET, "message": "bucket name taken\n", "severity": "error"},
            {"message": "deprecated", "severity": "warning"},
        ]
    }
    assert preview_errors(doc) == [f"{BUCKET}: bucket name taken"]


def test_inputs_become_config_and_nested_ones_are_refused() -> None:
    assert config_args({"region": "eu-west-1", "replicas": 3, "public": False}) == [
        "--config",
        "region=eu-west-1",
        "--config",
        "replicas=3",
        "--config",
        "public=false",
    ]
    with pytest.raises(EngineFailed, match="input 'tags' is a dict"):
        config_args({"tags": {"a": "b"}})


def test_without_the_cli_the_error_says_what_to_do(tmp_path: Path) -> None:
    repo = write_tree(
        tmp_path, {"modules/shop/Pulumi.yaml": "name: shop\nruntime: python\n", "modules/x/a.txt": ""}
    )
    io = RecordingIO()
    s = EngineSpec(ref="modules/shop", inputs={}, env={"PATH": str(tmp_path / "bin")}, timeout_seconds=30)
    with pytest.raises(
        EngineUnavailable, match=r"pulumi CLI not found on agent .*route this module to another engine"
    ):
        PulumiEngine().plan(repo, s, io.log, io.cancelled)
    with pytest.raises(EngineFailed, match=r"not a directory with a Pulumi\.yaml"):
        PulumiEngine().plan(
            repo, EngineSpec(ref="modules/x", inputs={}, env={}, timeout_seconds=30), io.log, io.cancelled
        )


# A stand-in for the pulumi CLI (not installed here): it records each call's directory and arguments,
# and answers `preview --json` with a one-bucket PreviewDigest.
FAKE_PULUMI = """#!/bin/sh
echo "$PWD $*" >> "$PWD/pulumi-calls.txt"
if [ "$1" = preview ]; then
  echo '{"steps": [{"op": "create", "urn": "@BUCKET@", "newState": {"urn": "@BUCKET@", "custom": true,
  "type": "aws:s3/bucket:Bucket", "inputs": {}, "outputs": {}}}], "changeSummary": {"create": 1}}'
else
  echo "pulumi $1 done"
fi
"""


def test_apply_selects_the_stack_previews_then_ups_in_the_module_directory(tmp_path: Path) -> None:
    repo = write_tree(tmp_path / "repo", {"modules/shop/Pulumi.yaml": "name: shop\nruntime: python\n"})
    cli = tmp_path / "bin" / "pulumi"
    cli.parent.mkdir()
    cli.write_text(FAKE_PULUMI.replace("@BUCKET@", BUCKET))
    cli.chmod(0o755)
    io = RecordingIO()
    spec = EngineSpec(
        ref="modules/shop",
        inputs={"replicas": 3},
        env={"PATH": str(cli.parent), "PULUMI_STACK": "dev"},
        timeout_seconds=60,
    )
    plan = PulumiEngine().apply(repo, spec, io.log, io.cancelled)
    assert [(rc.address, rc.actions) for rc in plan.resource_changes] == [(BUCKET, ["create"])]
    project = repo / "modules" / "shop"
    calls = (project / "pulumi-calls.txt").read_text().splitlines()
    assert calls == [
        f"{project} stack select --create --non-interactive dev",
        f"{project} preview --json --diff --non-interactive --stack dev --config replicas=3",
        f"{project} up --yes --skip-preview --non-interactive --stack dev --config replicas=3",
    ]
    assert "pulumi stack done" in io.text and "pulumi up done" in io.text
    assert "changeSummary" not in io.text  # preview's stdout is captured and parsed, not logged
