"""The audit log: written with the change, filterable, paginated, admins only."""

from __future__ import annotations

from fastapi.testclient import TestClient

from tests.factories import tf_state
from tests.state.test_backend_api import post_state


def test_writes_are_audited_with_request_context(admin: TestClient) -> None:
    resp = post_state(admin, tf_state())
    rid = resp.headers["x-request-id"]
    entry = admin.get("/api/v1/audit-logs", params={"action": "state.write"}).json()["items"][0]
    assert entry["actor"] == "admin" and entry["request_id"] == rid and entry["client_ip"]
    assert entry["resource"] == "stack/terraform/net/prod" and entry["result"] == "success"
    assert entry["details"]["version"] == 1


def test_incoming_request_id_is_kept(admin: TestClient) -> None:
    post_state(admin, tf_state())
    resp = admin.post(
        "/api/v1/stacks/terraform/net/prod/rollback",
        json={"version": 1},
        headers={"X-Request-ID": "trace-42"},
    )
    assert resp.headers["x-request-id"] == "trace-42"


def test_failed_write_leaves_no_audit_row(admin: TestClient) -> None:
    before = len(admin.get("/api/v1/audit-logs").json()["items"])
    assert post_state(admin, b"{broken").status_code == 400
    assert len(admin.get("/api/v1/audit-logs").json()["items"]) == before


def test_filters_and_pagination(admin: TestClient) -> None:
    for i in range(1, 6):
        assert post_state(admin, tf_state(serial=i)).status_code == 200
    page = admin.get("/api/v1/audit-logs", params={"action": "state.", "limit": 2}).json()
    got = [e["details"]["version"] for e in page["items"]]
    while page["next_cursor"]:
        page = admin.get(
            "/api/v1/audit-logs", params={"action": "state.", "limit": 2, "cursor": page["next_cursor"]}
        ).json()
        got += [e["details"]["version"] for e in page["items"]]
    assert got == [5, 4, 3, 2, 1]
    assert admin.get("/api/v1/audit-logs", params={"actor": "nobody"}).json()["items"] == []
    assert (
        len(admin.get("/api/v1/audit-logs", params={"resource": "stack/terraform/net"}).json()["items"]) == 5
    )
    assert admin.get("/api/v1/audit-logs", params={"since": "not-a-date"}).status_code == 422
    # A time without a zone is UTC.
    assert len(admin.get("/api/v1/audit-logs", params={"since": "2000-01-01T00:00:00"}).json()["items"]) > 5
    assert admin.get("/api/v1/audit-logs", params={"until": "2000-01-01T00:00:00"}).json()["items"] == []


def test_admins_only(reader: TestClient, writer: TestClient, anon: TestClient) -> None:
    assert anon.get("/api/v1/audit-logs").status_code == 401
    assert reader.get("/api/v1/audit-logs").status_code == 403
    assert writer.get("/api/v1/audit-logs").status_code == 403
