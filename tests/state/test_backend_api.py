"""The Terraform HTTP backend protocol, over the ASGI app, on SQLite and PostgreSQL."""

from __future__ import annotations

import base64
import json

import pytest
from fastapi.testclient import TestClient

from tests.conftest import ADMIN_TOKEN
from tests.factories import body, lock_info, md5_header, tf_state

URL = "/terraform/state/net/prod"


def post_state(
    client: TestClient, doc: object, *, url: str = URL, lock_id: str | None = None, md5: str | None = None
) -> object:
    data = body(doc) if not isinstance(doc, bytes) else doc
    params = {"ID": lock_id} if lock_id else None
    return client.post(
        url,
        content=data,
        params=params,
        headers={"Content-MD5": md5 or md5_header(data), "Content-Type": "application/json"},
    )


def basic(token: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"terraform:{token}".encode()).decode()}


def versions(admin: TestClient, url: str = "/api/v1/stacks/terraform/net/prod/versions") -> list[dict]:
    resp = admin.get(url)
    if resp.status_code == 404:
        return []
    return resp.json()["items"]


def test_get_without_state_is_204(admin: TestClient) -> None:
    assert admin.get(URL).status_code == 204


def test_post_then_get_returns_exact_bytes_with_md5(admin: TestClient) -> None:
    data = body(tf_state(serial=3)) + b"   "  # byte-for-byte, whitespace included
    resp = post_state(admin, data)
    assert resp.status_code == 200, resp.text
    got = admin.get(URL)
    assert got.status_code == 200
    assert got.content == data
    assert got.headers["content-md5"] == md5_header(data)
    [v1] = versions(admin)
    assert v1["version"] == 1 and v1["serial"] == 3 and v1["size"] == len(data)


def test_basic_auth_any_username(anon: TestClient) -> None:
    assert anon.get(URL, headers=basic(ADMIN_TOKEN)).status_code == 204
    assert (
        anon.get(URL, headers={"Authorization": "Basic " + base64.b64encode(b"u:").decode()}).status_code
        == 401
    )


def test_missing_and_bad_token_are_401_with_basic_challenge(anon: TestClient) -> None:
    resp = anon.get(URL)
    assert resp.status_code == 401
    assert resp.headers["www-authenticate"].startswith("Basic")
    assert resp.json()["error"]["code"] == "unauthorized"
    resp = anon.post(URL, content=body(tf_state()), headers=basic("xcf_wrong"))
    assert resp.status_code == 401


def test_reader_cannot_write_or_lock(reader: TestClient, admin: TestClient) -> None:
    assert post_state(admin, tf_state(serial=1)).status_code == 200
    assert reader.get(URL).status_code == 200
    assert post_state(reader, tf_state(serial=2)).status_code == 403
    assert reader.request("LOCK", URL, json=lock_info()).status_code == 403
    assert len(versions(admin)) == 1
    denied = admin.get("/api/v1/audit-logs", params={"result": "denied"}).json()["items"]
    assert any(d["actor"] == "rita" and d["resource"] == URL for d in denied)


def test_writer_can_write(writer: TestClient, admin: TestClient) -> None:
    assert post_state(writer, tf_state()).status_code == 200
    assert versions(admin)[0]["actor"] == "wendy"


def test_lock_protocol(admin: TestClient) -> None:
    info = lock_info()
    assert admin.request("LOCK", URL, json=info).status_code == 200
    # Terraform retries LOCK with the same ID: still 200.
    assert admin.request("LOCK", URL, json=info).status_code == 200
    other = admin.request("LOCK", URL, json=lock_info(who="bob@ci"))
    assert other.status_code == 423
    holder = other.json()
    assert holder["ID"] == info["ID"] and holder["Who"] == "alice@laptop"
    assert holder["Operation"] == "OperationTypeApply" and "error" in holder
    # A write without the holder's ID: 423 with the holder's LockInfo at the top level.
    resp = post_state(admin, tf_state())
    assert resp.status_code == 423 and resp.json()["ID"] == info["ID"]
    resp = post_state(admin, tf_state(), lock_id="someone-else")
    assert resp.status_code == 423
    assert post_state(admin, tf_state(), lock_id=info["ID"]).status_code == 200
    # Unlock with another ID: 409 and the holder's LockInfo.
    wrong = admin.request("UNLOCK", URL, json={**info, "ID": "nope"})
    assert wrong.status_code == 409 and wrong.json()["ID"] == info["ID"]
    assert admin.request("UNLOCK", URL, json=info).status_code == 200
    assert admin.request("UNLOCK", URL, json=info).status_code == 409  # not locked any more


def test_force_unlock_with_empty_chunked_body(writer: TestClient, admin: TestClient) -> None:
    info = lock_info(who="ghost@gone")
    assert admin.request("LOCK", URL, json=info).status_code == 200

    def chunks():  # what `terraform force-unlock` sends: chunked, empty, with an MD5 of nothing
        yield b""

    resp = writer.request(
        "UNLOCK",
        URL,
        content=chunks(),
        headers={"Content-Type": "application/json", "Content-MD5": md5_header(b"")},
    )
    assert resp.status_code == 200, resp.text
    assert admin.get("/api/v1/stacks/terraform/net/prod").json()["lock"] is None
    forced = admin.get("/api/v1/audit-logs", params={"action": "state.force_unlock"}).json()["items"]
    assert forced and forced[0]["actor"] == "wendy" and forced[0]["details"]["lock_id"] == info["ID"]
    # Nothing locked now: a forced unlock is a conflict.
    assert writer.request("UNLOCK", URL, content=b"").status_code == 409


def test_reader_cannot_force_unlock(reader: TestClient, admin: TestClient) -> None:
    assert admin.request("LOCK", URL, json=lock_info()).status_code == 200
    assert reader.request("UNLOCK", URL, content=b"").status_code == 403
    assert admin.get("/api/v1/stacks/terraform/net/prod").json()["lock"] is not None


@pytest.mark.parametrize(
    ("lock_path", "unlock_method", "unlock_path"),
    [
        ("/terraform/lock/net/prod", "POST", "/terraform/unlock/net/prod"),
        ("/terraform/state/net/prod/lock", "DELETE", "/terraform/state/net/prod/lock"),
    ],
)
def test_seed_and_gitlab_lock_paths(
    admin: TestClient, lock_path: str, unlock_method: str, unlock_path: str
) -> None:
    info = lock_info()
    assert admin.post(lock_path, json=info).status_code == 200
    assert admin.post(lock_path, json=lock_info()).json()["ID"] == info["ID"]
    assert admin.request(unlock_method, unlock_path, json=info).status_code == 200
    assert admin.get("/api/v1/stacks/terraform/net/prod").json()["lock"] is None


def test_lineage_change_and_serial_regression_are_accepted_and_audited(admin: TestClient) -> None:
    assert post_state(admin, tf_state(serial=5)).status_code == 200
    assert post_state(admin, tf_state(serial=2)).status_code == 200
    assert post_state(admin, tf_state(serial=3, lineage="other-lineage")).status_code == 200
    writes = admin.get("/api/v1/audit-logs", params={"action": "state.write"}).json()["items"]
    warnings = [w for entry in writes for w in (entry["details"] or {}).get("warnings", [])]
    assert "serial went back from 5 to 2" in warnings
    assert any("lineage changed" in w for w in warnings)


# ---- bad input: a clear 4xx and nothing stored ----

BAD_BODIES = [
    (b"not json", 400, "not valid JSON"),
    (b"", 400, "empty"),
    (b"[1, 2]", 400, "JSON object"),
    (b'{"version": 4, "serial": 1, "lineage": "x"}', 400, "resources"),
    (b'{"version": 4, "serial": "one", "lineage": "x", "resources": []}', 400, "serial"),
    (b'{"version": 4, "serial": 1, "resources": []}', 400, "lineage"),
    (b'{"version": 3, "serial": 1, "lineage": "x", "modules": []}', 400, "version 3"),
    (b'{"version": 4, "serial": 1, "lineage": "x", "resources": [}', 400, "not valid JSON"),
    (b'{"version": 4, "serial": 1, "lineage": "\xff\xfe", "resources": []}', 400, "UTF-8"),
]


@pytest.mark.parametrize(("data", "status", "message"), BAD_BODIES)
def test_bad_bodies_are_refused_and_change_nothing(
    admin: TestClient, data: bytes, status: int, message: str
) -> None:
    good = body(tf_state(serial=1))
    assert post_state(admin, good).status_code == 200
    resp = post_state(admin, data)
    assert resp.status_code == status, resp.text
    assert message in resp.json()["error"]["message"]
    assert admin.get(URL).content == good
    assert len(versions(admin)) == 1


def test_wrong_content_md5_is_400(admin: TestClient) -> None:
    resp = post_state(admin, tf_state(), md5=md5_header(b"something else"))
    assert resp.status_code == 400
    assert "Content-MD5" in resp.json()["error"]["message"]
    assert post_state(admin, tf_state(), md5="%%%").status_code == 400
    assert admin.get(URL).status_code == 204


def test_oversized_body_is_413(admin: TestClient) -> None:
    doc = tf_state(resources={"big": "x" * (3 * 1024 * 1024)})  # limit in tests: 2 MiB
    resp = post_state(admin, doc)
    assert resp.status_code == 413
    assert "XCF_STATE_MAX_BYTES" in resp.json()["error"]["message"]

    def chunked():  # no Content-Length: the limit is enforced while streaming
        data = body(doc)
        for i in range(0, len(data), 65536):
            yield data[i : i + 65536]

    resp = admin.post(URL, content=chunked(), headers={"Content-Type": "application/json"})
    assert resp.status_code == 413
    assert admin.get(URL).status_code == 204


@pytest.mark.parametrize(
    "path",
    [
        "/terraform/state/net/a%2Fb",
        "/terraform/state/net/..",
        "/terraform/state/" + "p" * 500 + "/s",
        "/terraform/state/-bad/s",
        "/terraform/state/net",
        "/terraform/state/a/b/c/d",
        "/terraform/state/net/s%20x",
    ],
)
def test_bad_names_are_400(admin: TestClient, path: str) -> None:
    resp = post_state(admin, tf_state(), url=path)
    assert resp.status_code == 400, (path, resp.status_code, resp.text)
    assert resp.json()["error"]["message"]
    assert admin.get("/api/v1/stacks").json()["items"] == []


def test_unknown_method_on_a_valid_address_is_405(admin: TestClient) -> None:
    resp = admin.patch(URL, content=b"{}")
    assert resp.status_code == 405 and resp.json()["error"]["code"] == "method_not_allowed"


def test_bad_lock_bodies(admin: TestClient) -> None:
    assert admin.request("LOCK", URL, content=b"garbage").status_code == 400
    assert admin.request("LOCK", URL, content=b"").status_code == 400
    assert admin.request("LOCK", URL, json={"ID": ""}).status_code == 400
    assert admin.get("/api/v1/stacks").json()["items"] == []


def test_revoked_token_is_401(admin: TestClient, writer: TestClient) -> None:
    tokens = admin.get("/api/v1/tokens").json()
    wendy = next(t for t in tokens if t["user"] == "wendy")
    assert admin.delete(f"/api/v1/tokens/{wendy['id']}").status_code == 200
    resp = post_state(writer, tf_state())
    assert resp.status_code == 401
    assert "revoked" in resp.json()["error"]["message"]


def test_organizations_do_not_see_each_other(admin: TestClient, db) -> None:  # type: ignore[no-untyped-def]
    from xcloudflow.audit.schemas import AuditContext
    from xcloudflow.iam import service as iam

    assert post_state(admin, tf_state()).status_code == 200
    with db.write() as session:
        token = iam.create_organization(
            session=session, ctx=AuditContext(actor="test", org_id=None), name="other", admin_name="mallory"
        )
    other = TestClient(admin.app, raise_server_exceptions=False)
    other.headers["Authorization"] = f"Bearer {token}"
    assert other.get(URL).status_code == 204
    assert other.get("/api/v1/stacks").json()["items"] == []
    assert other.get("/api/v1/stacks/terraform/net/prod").status_code == 404
    assert other.get("/api/v1/audit-logs").json()["items"][0]["action"] == "iam.org.create"
    assert post_state(other, tf_state(serial=9)).status_code == 200
    assert json.loads(admin.get(URL).content)["serial"] == 1
    assert json.loads(other.get(URL).content)["serial"] == 9


def test_delete_on_backend_path_soft_deletes(admin: TestClient) -> None:
    assert post_state(admin, tf_state()).status_code == 200
    assert admin.delete(URL).status_code == 200
    gone = admin.get(URL)
    assert gone.status_code == 410 and "restore" in gone.json()["error"]["message"]
    assert post_state(admin, tf_state(serial=2)).status_code == 410
    assert admin.request("LOCK", URL, json=lock_info()).status_code == 410
