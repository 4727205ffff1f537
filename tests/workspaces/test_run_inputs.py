"""What runs take from a workspace (run_inputs.run_inputs, code_archive, lock_workspace) and its checks."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from tests.workspaces.conftest import API, MAIN_TF, make_workspace, targz, upload
from xcloudflow.db import Database
from xcloudflow.errors import Invalid, NotFound
from xcloudflow.iam import service as iam
from xcloudflow.keys.keyring import Keyring
from xcloudflow.workspaces import run_inputs, service
from xcloudflow.workspaces.schemas import RunInputs

WS = f"{API}/shop/dev"


def _keyring(client: TestClient) -> Keyring:
    keyring: Keyring = client.app.state.ctx.keyring  # type: ignore[attr-defined]
    return keyring


def inputs_of(client: TestClient, db: Database, project: str = "shop", name: str = "dev") -> RunInputs:
    with db.read() as session:
        org = iam.org_id_by_name(session=session, name=iam.DEFAULT_ORG)
        ws = service.get_workspace(session=session, org_id=org, project=project, name=name)
        return run_inputs.run_inputs(session=session, keyring=_keyring(client), workspace=ws)


def put(client: TestClient, category: str, key: str, **body: object) -> None:
    resp = client.put(f"{WS}/vars/{category}/{key}", json=body)
    assert resp.status_code in (200, 201), resp.text


def test_code_mode_inputs(admin: TestClient, db: Database) -> None:
    make_workspace(admin)
    data = targz({"main.tf": MAIN_TF})
    v1 = upload(admin, data)
    put(admin, "terraform", "region", value="eu-west-1")
    put(admin, "terraform", "tags", value='{team = "a"}', hcl=True)
    put(admin, "terraform", "password", value="hunter2-secret", sensitive=True)
    put(admin, "env", "AWS_PROFILE", value="dev")
    put(admin, "env", "API_TOKEN", value="tok-secret", sensitive=True)
    admin.post(f"{WS}/hooks", json={"stage": "post_plan", "kind": "script", "target": "echo done"})
    admin.post(
        f"{WS}/hooks",
        json={"stage": "pre_plan", "kind": "http", "target": "https://hooks.example/x", "secret": "hmac-key"},
    )
    admin.post(
        f"{WS}/hooks",
        json={
            "stage": "pre_plan",
            "kind": "python",
            "target": "pkg.mod:fn",
            "mandatory": False,
            "timeout_seconds": 5,
        },
    )
    out = inputs_of(admin, db)
    assert out.code_number == 1 and out.code_sha256 == v1["sha256"] and out.code_version_id is not None
    assert out.resource_versions is None and out.files == {}
    assert out.tfvars == {"region": "eu-west-1", "password": "hunter2-secret"}
    assert out.hcl_vars == {"tags": '{team = "a"}'}
    assert out.env == {"AWS_PROFILE": "dev", "API_TOKEN": "tok-secret"}
    assert sorted(out.sensitive) == ["hmac-key", "hunter2-secret", "tok-secret"]
    assert out.hooks == [
        {
            "stage": "pre_plan",
            "kind": "http",
            "target": "https://hooks.example/x",
            "mandatory": True,
            "timeout_seconds": 60,
            "secret": "hmac-key",
        },
        {
            "stage": "pre_plan",
            "kind": "python",
            "target": "pkg.mod:fn",
            "mandatory": False,
            "timeout_seconds": 5,
            "secret": None,
        },
        {
            "stage": "post_plan",
            "kind": "script",
            "target": "echo done",
            "mandatory": True,
            "timeout_seconds": 60,
            "secret": None,
        },
    ]
    with db.read() as session:
        assert (
            service.code_archive(
                session=session, keyring=_keyring(admin), code_version_id=out.code_version_id
            )
            == data
        )
        with pytest.raises(NotFound):
            service.code_archive(session=session, keyring=_keyring(admin), code_version_id=999_999)


def test_no_configuration_is_refused(admin: TestClient, db: Database) -> None:
    make_workspace(admin)
    with pytest.raises(Invalid, match="has no configuration: upload a code version or add resources"):
        inputs_of(admin, db)


def test_a_required_variable_without_value_is_refused(admin: TestClient, db: Database) -> None:
    make_workspace(admin)
    upload(admin, targz({"main.tf": MAIN_TF}))
    with pytest.raises(Invalid) as err:
        inputs_of(admin, db)
    assert err.value.message == (
        "variable region has no value in code version 1: set it with "
        "`xcf workspace vars set shop/dev region VALUE` (PUT /api/v1/workspaces/shop/dev/vars/terraform/region)"
    )
    put(admin, "env", "TF_VAR_region", value="eu")  # Terraform reads TF_VAR_* too
    inputs_of(admin, db)
    admin.delete(f"{WS}/vars/env/TF_VAR_region")
    upload(admin, targz({"main.tf": MAIN_TF, "terraform.tfvars": 'region = "eu"\n'}))
    inputs_of(admin, db)
    upload(admin, targz({"main.tf": MAIN_TF, "x.auto.tfvars.json": '{"region": "eu"}'}))
    inputs_of(admin, db)


def test_only_the_working_directory_counts(admin: TestClient, db: Database) -> None:
    make_workspace(admin, working_directory="envs/dev")
    upload(admin, targz({"main.tf": "x {", "envs/dev/main.tf": 'variable "a" {\n  default = 1\n}\n'}))
    inputs_of(admin, db)  # the broken root file is not part of the root module
    upload(admin, targz({"main.tf": 'variable "b" {}\n', "envs/dev/main.tf": 'variable "c" {}\n'}))
    with pytest.raises(Invalid, match="variable c has no value"):
        inputs_of(admin, db)
    upload(admin, targz({"main.tf": 'variable "b" {}\n'}))
    with pytest.raises(Invalid, match="no Terraform files in working directory envs/dev"):
        inputs_of(admin, db)


def test_unparseable_configuration_skips_the_variable_check(admin: TestClient, db: Database) -> None:
    make_workspace(admin)
    upload(admin, targz({"main.tf": 'variable "a" {}\nthis is { not hcl'}))
    inputs_of(admin, db)  # Terraform reports the syntax error itself
    upload(admin, targz({"main.tf": 'variable "a" {}\n', "more.tf.json": '{"variable": {"b": {}}}'}))
    inputs_of(admin, db)


def test_resources_mode_inputs(admin: TestClient, db: Database) -> None:
    make_workspace(admin)
    resp = admin.post(
        f"{WS}/resources",
        json={
            "address": "terraform_data.web",
            "hcl": 'resource "terraform_data" "web" {\n  input = var.region\n}\n',
        },
    )
    assert resp.status_code == 201, resp.text
    put(admin, "terraform", "region", value="eu")
    put(admin, "terraform", "pw", value="resource-secret", sensitive=True)
    assert admin.get(WS).json()["source"] == "resources"
    out = inputs_of(admin, db)
    assert out.code_version_id is None and out.code_number is None and out.code_sha256 is None
    assert out.resource_versions == {"terraform_data.web": 1}
    assert 'resource "terraform_data" "web"' in out.files["main.tf"]
    assert out.files["variables.tf"].count("variable ") == 2
    assert 'variable "pw" {\n  sensitive = true\n}' in out.files["variables.tf"]
    assert out.tfvars == {"pw": "resource-secret", "region": "eu"} and out.sensitive == ["resource-secret"]
    # a code version takes over
    upload(admin, targz({"main.tf": "# nothing\n"}))
    assert admin.get(WS).json()["source"] == "code"
    assert inputs_of(admin, db).resource_versions is None


def test_lock_workspace_for_runs(admin: TestClient, db: Database) -> None:
    make_workspace(admin)
    with db.write() as session:
        org = iam.org_id_by_name(session=session, name=iam.DEFAULT_ORG)
        ws = service.get_workspace(session=session, org_id=org, project="shop", name="dev", lock=True)
        service.lock_workspace(session=session, workspace=ws, reason="apply failed", actor="run-7")
        service.lock_workspace(session=session, workspace=ws, reason="second", actor="run-8")
    got = admin.get(WS).json()
    assert got["locked"] is True and got["lock_reason"] == "apply failed" and got["locked_by"] == "run-7"
    with db.read() as session, pytest.raises(NotFound, match="no workspace shop/none"):
        service.get_workspace(session=session, org_id=org, project="shop", name="none")
