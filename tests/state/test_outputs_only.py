"""Reading outputs is not reading state: a reader (`state:read-outputs`) gets a state document holding
only the non-sensitive outputs on the backend, and 403 on the raw version content; writers and admins
(`state:read`) get the stored bytes."""

from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient

from tests.factories import body, md5_header, tf_state
from tests.state.test_backend_api import URL, post_state
from xcloudflow.iam.schemas import Permission, Principal

API = "/api/v1/stacks/terraform/net/prod"
SECRET = "hunter2-the-db-password"


def _seed(client: TestClient) -> bytes:
    doc = tf_state(
        serial=7,
        resources={"db": SECRET},
        outputs={
            "plain": {"value": "vpc-123", "type": "string"},
            "pw": {"value": SECRET, "type": "string", "sensitive": True},
            "ids": {"value": ["a", "b"], "type": ["list", "string"]},
        },
    )
    data = body(doc)
    assert post_state(client, data).status_code == 200
    return data


def test_a_reader_gets_only_the_public_outputs_on_the_backend(admin: TestClient, reader: TestClient) -> None:
    stored = _seed(admin)
    resp = reader.get(URL)
    assert resp.status_code == 200, resp.text
    assert SECRET not in resp.text
    assert resp.headers["x-xcf-state"] == "outputs-only"
    assert resp.headers["content-md5"] == md5_header(resp.content)
    assert int(resp.headers["content-length"]) == len(resp.content)
    doc = json.loads(resp.content)
    assert doc["version"] == 4 and doc["serial"] == 7 and doc["resources"] == []
    assert doc["lineage"] == json.loads(stored)["lineage"]
    assert doc["terraform_version"] == "1.15.5"
    assert doc["outputs"] == {
        "plain": {"value": "vpc-123", "type": "string"},
        "ids": {"value": ["a", "b"], "type": ["list", "string"]},
    }
    assert resp.headers["etag"] != admin.get(URL).headers["etag"]  # another document, another tag


def test_raw_state_is_for_writers_and_admins(
    admin: TestClient, writer: TestClient, reader: TestClient
) -> None:
    stored = _seed(admin)
    for client in (admin, writer):
        raw = client.get(URL)
        assert raw.status_code == 200 and raw.content == stored
        assert "x-xcf-state" not in raw.headers
        assert client.get(API + "/versions/1/content").content == stored
    refused = reader.get(API + "/versions/1/content")
    assert refused.status_code == 403
    message = refused.json()["error"]["message"]
    assert "state:read" in message and "writer" in message
    outputs = reader.get(API + "/outputs").json()["outputs"]
    assert outputs["plain"]["value"] == "vpc-123" and outputs["pw"]["value"] == "(sensitive)"


def test_no_state_and_pulumi(admin: TestClient, reader: TestClient) -> None:
    assert reader.get(URL).status_code == 204
    assert admin.put("/pulumi/state/shop/dev", content=b'{"version": 3, "deployment": {}}').status_code == 200
    refused = reader.get("/pulumi/state/shop/dev")
    assert refused.status_code == 403 and "/outputs" in refused.json()["error"]["message"]
    assert admin.get("/pulumi/state/shop/dev").status_code == 200


@pytest.mark.parametrize(("role", "raw"), [("reader", False), ("writer", True), ("admin", True)])
def test_the_roles_permissions(role: str, raw: bool) -> None:
    who = Principal(user_id=1, user_name="u", org_id=1, org_name="default", role=role, token_id=1)
    assert who.can(Permission.STATE_READ_OUTPUTS)
    assert who.can(Permission.STATE_READ) is raw
