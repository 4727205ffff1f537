"""The JSON API over stacks and versions: listing, diff, rollback, outputs, delete/restore, purge."""

from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient

from tests.factories import body, lock_info, md5_header, pulumi_export, tf_state
from tests.state.test_backend_api import post_state

API = "/api/v1/stacks/terraform/net/prod"


def seed_versions(client: TestClient) -> None:
    assert post_state(client, tf_state(serial=1, resources={"a": "one", "b": "two"})).status_code == 200
    assert (
        post_state(
            client,
            tf_state(
                serial=2,
                resources={"a": "one", "b": "changed", "c": "new"},
                outputs={
                    "plain": {"value": "v", "type": "string"},
                    "pw": {"value": "hunter2", "type": "string", "sensitive": True},
                },
            ),
        ).status_code
        == 200
    )


def test_stack_detail_and_versions(admin: TestClient) -> None:
    seed_versions(admin)
    stack = admin.get(API).json()
    assert stack["head_version"] == 2 and stack["serial"] == 2 and stack["lock"] is None
    assert stack["lineage"] == tf_state()["lineage"]
    items = admin.get(API + "/versions").json()["items"]
    assert [v["version"] for v in items] == [2, 1]
    assert items[0]["actor"] == "admin" and len(items[0]["etag"]) == 64
    assert admin.get(API + "/versions/1").json()["serial"] == 1
    assert admin.get(API + "/versions/9").status_code == 404
    content = admin.get(API + "/versions/1/content")
    assert json.loads(content.content)["resources"][1]["instances"][0]["attributes"]["input"] == "two"


def test_lock_holder_and_age_shown(admin: TestClient) -> None:
    seed_versions(admin)
    assert (
        admin.request("LOCK", "/terraform/state/net/prod", json=lock_info(who="ci@runner")).status_code == 200
    )
    lock = admin.get(API).json()["lock"]
    assert lock["Who"] == "ci@runner" and lock["actor"] == "admin" and lock["age_seconds"] >= 0


def test_list_stacks_filters_and_cursor(admin: TestClient) -> None:
    for i in range(5):
        assert post_state(admin, tf_state(), url=f"/terraform/state/proj{i % 2}/s{i}").status_code == 200
    assert admin.put("/pulumi/state/shop/dev", content=body(pulumi_export())).status_code == 200
    page = admin.get("/api/v1/stacks", params={"limit": 2}).json()
    seen = [s["stack"] for s in page["items"]]
    while page["next_cursor"]:
        page = admin.get("/api/v1/stacks", params={"limit": 2, "cursor": page["next_cursor"]}).json()
        seen += [s["stack"] for s in page["items"]]
    assert seen == ["s0", "s1", "s2", "s3", "s4", "dev"]
    assert [s["stack"] for s in admin.get("/api/v1/stacks", params={"project": "proj1"}).json()["items"]] == [
        "s1",
        "s3",
    ]
    assert [s["tool"] for s in admin.get("/api/v1/stacks", params={"tool": "pulumi"}).json()["items"]] == [
        "pulumi"
    ]
    assert admin.get("/api/v1/stacks", params={"tool": "chef"}).status_code == 400
    assert admin.get("/api/v1/stacks", params={"cursor": "!!"}).status_code == 400
    assert admin.get("/api/v1/stacks", params={"limit": 0}).status_code == 400


def test_diff(admin: TestClient) -> None:
    seed_versions(admin)
    diff = admin.get(API + "/diff", params={"from": 1, "to": 2}).json()
    assert diff["added"] == ["terraform_data.c"]
    assert diff["removed"] == []
    assert diff["changed"] == ["terraform_data.b"]
    assert admin.get(API + "/diff", params={"from": 1, "to": 7}).status_code == 404
    assert admin.get(API + "/diff", params={"from": 0, "to": 1}).status_code == 422


def test_rollback_writes_new_version_with_next_serial_and_head_lineage(admin: TestClient) -> None:
    seed_versions(admin)
    # A third version with another lineage (state push -force): rollback must take the head's.
    assert post_state(admin, tf_state(serial=7, lineage="new-lineage", resources={})).status_code == 200
    resp = admin.post(API + "/rollback", json={"version": 1})
    assert resp.status_code == 201, resp.text
    assert resp.json()["version"] == 4 and resp.json()["source"] == "rollback"
    doc = json.loads(admin.get("/terraform/state/net/prod").content)
    assert doc["serial"] == 8 and doc["lineage"] == "new-lineage"
    assert [r["name"] for r in doc["resources"]] == ["a", "b"]
    assert doc["resources"][1]["instances"][0]["attributes"]["input"] == "two"
    audit = admin.get("/api/v1/audit-logs", params={"action": "state.rollback"}).json()["items"]
    assert audit[0]["details"]["restored_version"] == 1


def test_rollback_refused_while_locked_and_bad_requests(admin: TestClient) -> None:
    seed_versions(admin)
    info = lock_info()
    assert admin.request("LOCK", "/terraform/state/net/prod", json=info).status_code == 200
    resp = admin.post(API + "/rollback", json={"version": 1})
    assert resp.status_code == 423 and resp.json()["ID"] == info["ID"]
    assert admin.post(API + "/rollback", json={"version": 1, "lock_id": info["ID"]}).status_code == 201
    assert admin.post(API + "/rollback", json={"version": 99, "lock_id": info["ID"]}).status_code == 404
    assert admin.post(API + "/rollback", json={"version": "x"}).status_code == 422
    assert admin.post(API + "/rollback", json={"version": 1, "extra": 1}).status_code == 422
    assert (
        admin.post(API + "/rollback", content=b"{", headers={"Content-Type": "application/json"}).status_code
        == 422
    )
    assert admin.get(API).json()["head_version"] == 3


def test_outputs_masked_for_readers(admin: TestClient, reader: TestClient, writer: TestClient) -> None:
    seed_versions(admin)
    as_reader = reader.get(API + "/outputs").json()["outputs"]
    assert as_reader["pw"] == {"value": "(sensitive)", "type": "string", "sensitive": True}
    assert as_reader["plain"]["value"] == "v"
    assert writer.get(API + "/outputs").json()["outputs"]["pw"]["value"] == "hunter2"


def test_pulumi_outputs_mask_secrets(admin: TestClient, reader: TestClient) -> None:
    assert admin.put("/pulumi/state/shop/dev", content=body(pulumi_export())).status_code == 200
    outs = reader.get("/api/v1/stacks/pulumi/shop/dev/outputs").json()["outputs"]
    assert outs["bucket"]["value"] == "b-123"
    assert outs["dbPassword"]["value"] == "(sensitive)" and outs["dbPassword"]["sensitive"] is True


def test_delete_restore(admin: TestClient) -> None:
    seed_versions(admin)
    assert admin.delete(API).json()["deleted_at"] is not None
    assert admin.get("/api/v1/stacks").json()["items"] == []
    assert len(admin.get("/api/v1/stacks", params={"include_deleted": True}).json()["items"]) == 1
    assert admin.post(API + "/restore").status_code == 200
    assert admin.post(API + "/restore").status_code == 409
    assert admin.get("/terraform/state/net/prod").status_code == 200


def test_delete_refused_while_locked(admin: TestClient) -> None:
    seed_versions(admin)
    assert admin.request("LOCK", "/terraform/state/net/prod", json=lock_info()).status_code == 200
    assert admin.delete(API).status_code == 423
    assert admin.get(API).json()["deleted_at"] is None


def test_purge_version(admin: TestClient, writer: TestClient) -> None:
    seed_versions(admin)
    assert writer.delete(API + "/versions/1").status_code == 403
    assert admin.delete(API + "/versions/2").status_code == 409  # the head
    purged = admin.delete(API + "/versions/1").json()
    assert purged["purged_by"] == "admin"
    assert admin.get(API + "/versions/1/content").status_code == 410
    assert admin.get("/terraform/state/net/prod").status_code == 200
    audit = admin.get("/api/v1/audit-logs", params={"action": "state.purge_version"}).json()["items"]
    assert audit[0]["details"]["version"] == 1


def test_unknown_stack_and_tool(admin: TestClient) -> None:
    assert admin.get(API).status_code == 404
    assert admin.get("/api/v1/stacks/chef/net/prod").status_code == 400
    assert admin.get("/api/v1/stacks/terraform/net/..").status_code in (400, 404)


def test_pulumi_round_trip_and_bad_documents(admin: TestClient) -> None:
    data = body(pulumi_export())
    assert (
        admin.put(
            "/pulumi/state/shop/dev", content=data, headers={"Content-MD5": md5_header(data)}
        ).status_code
        == 200
    )
    assert admin.get("/pulumi/state/shop/dev").content == data
    assert (
        admin.put("/pulumi/state/shop/dev", content=body(pulumi_export("b-456", version=4))).status_code
        == 200
    )
    assert [v["version"] for v in admin.get("/api/v1/stacks/pulumi/shop/dev/versions").json()["items"]] == [
        2,
        1,
    ]
    diff = admin.get("/api/v1/stacks/pulumi/shop/dev/diff", params={"from": 1, "to": 2}).json()
    assert "urn:pulumi:dev::shop::aws:s3/bucket:Bucket::site" in diff["changed"]
    for bad, why in [
        ({"version": 2, "deployment": {}}, "version 2"),
        ({"version": 3}, "deployment"),
        ({"version": 3, "deployment": {"resources": {}}}, "deployment.resources"),
        ({"version": 3, "deployment": {"resources": [{"type": "x"}]}}, "urn"),
        (tf_state(), "version 4"),
    ]:
        resp = admin.put("/pulumi/state/shop/dev", content=body(bad))
        assert resp.status_code == 400, (bad, resp.text)
        assert why in resp.json()["error"]["message"] or "Pulumi" in resp.json()["error"]["message"]
    assert admin.get("/api/v1/stacks/pulumi/shop/dev").json()["head_version"] == 2
    info = lock_info()
    assert admin.request("LOCK", "/pulumi/state/shop/dev", json=info).status_code == 200
    assert admin.put("/pulumi/state/shop/dev", content=data).status_code == 423
    assert admin.request("UNLOCK", "/pulumi/state/shop/dev", json=info).status_code == 200


ROUTES = [
    ("GET", "/api/v1/stacks", None),
    ("GET", API, None),
    ("GET", API + "/versions", None),
    ("GET", API + "/versions/1", None),
    ("GET", API + "/versions/1/content", None),
    ("GET", API + "/diff?from=1&to=2", None),
    ("GET", API + "/outputs", None),
    ("POST", API + "/rollback", {"version": 1}),
    ("DELETE", API, None),
    ("POST", API + "/restore", None),
    ("DELETE", API + "/versions/1", None),
]
WRITES = {
    ("POST", API + "/rollback"),
    ("DELETE", API),
    ("POST", API + "/restore"),
    ("DELETE", API + "/versions/1"),
    ("GET", API + "/versions/1/content"),  # raw state: state:read, not a reader's outputs-only access
}


@pytest.mark.parametrize(("method", "path", "payload"), ROUTES)
def test_every_route_needs_auth_and_role(
    anon: TestClient, reader: TestClient, admin: TestClient, method: str, path: str, payload: object
) -> None:
    seed_versions(admin)
    assert anon.request(method, path, json=payload).status_code == 401
    resp = reader.request(method, path, json=payload)
    if (method, path) in WRITES:
        assert resp.status_code == 403, resp.text
        assert resp.json()["error"]["code"] == "forbidden"
    else:
        assert resp.status_code == 200, resp.text
