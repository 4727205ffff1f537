"""Users, roles and tokens through the API."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from fastapi.testclient import TestClient

from xcloudflow.db import Database
from xcloudflow.iam.models import ApiToken


def test_whoami(admin: TestClient, anon: TestClient) -> None:
    assert admin.get("/api/v1/whoami").json() == {
        "user": "admin",
        "organization": "default",
        "role": "admin",
        "token_id": 1,
    }
    assert anon.get("/api/v1/whoami").status_code == 401


def test_token_shown_once_and_stored_hashed(admin: TestClient, db: Database) -> None:
    created = admin.post("/api/v1/tokens", json={"name": "laptop"}).json()
    assert created["token"].startswith("xcf_") and len(created["token"]) > 40
    listed = admin.get("/api/v1/tokens").json()
    assert all("token" not in t for t in listed)
    assert created["prefix"] == created["token"][:8]
    with db.read() as session:
        stored = session.get_one(ApiToken, created["id"])
        assert created["token"] not in stored.token_hash and len(stored.token_hash) == 64


def test_expired_token_is_401(admin: TestClient, anon: TestClient, db: Database) -> None:
    soon = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    created = admin.post("/api/v1/tokens", json={"name": "short", "expires_at": soon}).json()
    with db.write() as session:
        session.get_one(ApiToken, created["id"]).expires_at = datetime.now(UTC) - timedelta(seconds=1)
    resp = anon.get("/api/v1/whoami", headers={"Authorization": f"Bearer {created['token']}"})
    assert resp.status_code == 401 and "expired" in resp.json()["error"]["message"]


def test_token_bad_input(admin: TestClient) -> None:
    past = (datetime.now(UTC) - timedelta(days=1)).isoformat()
    assert admin.post("/api/v1/tokens", json={"name": "x", "expires_at": past}).status_code == 400
    assert (
        admin.post("/api/v1/tokens", json={"name": "x", "expires_at": "2030-01-01T00:00:00"}).status_code
        == 400
    )
    assert admin.post("/api/v1/tokens", json={"name": ""}).status_code == 422
    assert admin.post("/api/v1/tokens", json={"name": "x", "user": "nobody"}).status_code == 404
    assert admin.post("/api/v1/tokens", json={"name": "x", "bogus": 1}).status_code == 422


def test_users_and_roles(admin: TestClient, reader: TestClient, writer: TestClient) -> None:
    names = {u["name"]: u["role"] for u in admin.get("/api/v1/users").json()}
    assert names == {"admin": "admin", "rita": "reader", "wendy": "writer"}
    assert admin.post("/api/v1/users", json={"name": "rita", "role": "writer"}).status_code == 409
    assert admin.post("/api/v1/users", json={"name": "a/b"}).status_code == 422
    assert admin.post("/api/v1/users", json={"name": "x", "role": "god"}).status_code == 422
    assert writer.post("/api/v1/users", json={"name": "x"}).status_code == 403
    assert reader.get("/api/v1/users").status_code == 403


def test_non_admins_manage_only_their_tokens(admin: TestClient, writer: TestClient) -> None:
    mine = writer.post("/api/v1/tokens", json={"name": "second"}).json()
    assert {t["user"] for t in writer.get("/api/v1/tokens").json()} == {"wendy"}
    assert writer.post("/api/v1/tokens", json={"name": "x", "user": "admin"}).status_code == 403
    assert writer.delete("/api/v1/tokens/1").status_code == 403  # the admin's bootstrap token
    assert writer.delete(f"/api/v1/tokens/{mine['id']}").status_code == 200
    assert writer.delete("/api/v1/tokens/999").status_code == 404
    listed = {t["name"]: t for t in admin.get("/api/v1/tokens").json()}
    assert set(listed) == {"bootstrap", "wendy-token", "second"}
    assert listed["second"]["revoked_at"] is not None and listed["wendy-token"]["revoked_at"] is None


def test_identity_routes_need_auth(anon: TestClient) -> None:
    for method, path in [
        ("GET", "/api/v1/users"),
        ("POST", "/api/v1/users"),
        ("GET", "/api/v1/tokens"),
        ("POST", "/api/v1/tokens"),
        ("DELETE", "/api/v1/tokens/1"),
    ]:
        assert anon.request(method, path, json={"name": "x"}).status_code == 401, path
