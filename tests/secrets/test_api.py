"""The secret store over HTTP on both databases: write-only, merged keys, encrypted at rest, audited
without values, and every route's 401/403."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text

from xcloudflow.db import Database
from xcloudflow.keys.keyring import Keyring
from xcloudflow.secrets import service
from xcloudflow.settings import Settings

VALUE = "hunter2-very-secret-value"


def test_set_merge_list_delete(admin: TestClient, writer: TestClient, reader: TestClient) -> None:
    resp = writer.put("/api/v1/secrets/db-credentials", json={"data": {"password": VALUE, "user": "app"}})
    assert resp.status_code == 201, resp.text
    assert resp.json()["keys"] == ["password", "user"]
    assert VALUE not in resp.text
    resp = writer.put("/api/v1/secrets/db-credentials", json={"data": {"port": "5432"}})
    assert resp.status_code == 200
    assert resp.json()["keys"] == ["password", "port", "user"]  # merged, not replaced

    listed = reader.get("/api/v1/secrets")
    assert listed.status_code == 200
    assert [s["name"] for s in listed.json()] == ["db-credentials"]
    assert listed.json()[0]["keys"] == ["password", "port", "user"]
    assert listed.json()[0]["updated_by"] == "wendy"
    assert VALUE not in listed.text
    shown = reader.get("/api/v1/secrets/db-credentials")
    assert shown.status_code == 200 and VALUE not in shown.text

    assert writer.delete("/api/v1/secrets/db-credentials", params={"key": "port"}).status_code == 204
    assert reader.get("/api/v1/secrets/db-credentials").json()["keys"] == ["password", "user"]
    missing_key = writer.delete("/api/v1/secrets/db-credentials", params={"key": "nope"})
    assert missing_key.status_code == 404
    assert "password" in missing_key.json()["error"]["message"]  # names keys, never values
    assert VALUE not in missing_key.text
    assert writer.delete("/api/v1/secrets/db-credentials").status_code == 204
    assert reader.get("/api/v1/secrets").json() == []
    assert writer.delete("/api/v1/secrets/db-credentials").status_code == 404


def test_values_are_encrypted_at_rest_and_audited_without_values(
    admin: TestClient, settings: Settings, db: Database
) -> None:
    assert admin.put("/api/v1/secrets/s1", json={"data": {"k": VALUE}}).status_code == 201
    assert admin.put("/api/v1/secrets/s1", json={"data": {"k": VALUE + "2"}}).status_code == 200
    with db.read() as session:
        raw = session.execute(text("SELECT sealed, keys FROM secrets")).one()
        assert VALUE.encode() not in bytes(raw[0])
        values = service.read_values(
            session=session, keyring=Keyring.from_settings(settings), org_id=1, name="s1"
        )
        assert values == {"k": VALUE + "2"}
        assert (
            service.read_values(session=session, keyring=Keyring.from_settings(settings), org_id=1, name="x")
            is None
        )
    logs = admin.get("/api/v1/audit-logs", params={"resource": "secret/"}).json()["items"]
    actions = sorted(entry["action"] for entry in logs)
    assert actions == ["secret.create", "secret.update"]
    assert all(VALUE not in str(entry) for entry in logs)
    assert any(entry["details"]["keys_set"] == ["k"] for entry in logs)


@pytest.mark.parametrize(
    ("name", "data", "status", "says"),
    [
        ("bad name!", {"k": "v"}, 400, "secret name"),
        ("ok", {"bad key!": "v"}, 400, "secret key 'bad key!'"),
        ("ok", {"k": "x" * (64 * 1024 + 1)}, 400, "larger than"),
        ("ok", {}, 422, "data"),
    ],
)
def test_bad_input(admin: TestClient, name: str, data: dict[str, str], status: int, says: str) -> None:
    resp = admin.put(f"/api/v1/secrets/{name}", json={"data": data})
    assert resp.status_code == status, resp.text
    assert says in resp.json()["error"]["message"]
    assert "x" * 100 not in resp.text


def test_every_route_needs_a_token_and_the_right_role(anon: TestClient, reader: TestClient) -> None:
    routes = [
        ("GET", "/api/v1/secrets", None),
        ("GET", "/api/v1/secrets/s", None),
        ("PUT", "/api/v1/secrets/s", {"data": {"k": "v"}}),
        ("DELETE", "/api/v1/secrets/s", None),
    ]
    for method, path, body in routes:
        assert anon.request(method, path, json=body).status_code == 401, (method, path)
    assert reader.put("/api/v1/secrets/s", json={"data": {"k": "v"}}).status_code == 403
    assert reader.delete("/api/v1/secrets/s").status_code == 403
