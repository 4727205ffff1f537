"""The resolve hot path's caches. Config clients poll resolve and watch, so those two routes remember a
token's principal briefly (`XCF_AUTH_CACHE_SECONDS`): a revoked token keeps working there for at most
that long, and every other route refuses it at once; with the cache off, at once there too. What a
config resolves from is remembered too, and a change made through this process is seen at once."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from tests.conflux.test_api import CFG, make_config, publish
from xcloudflow.settings import Settings


def _token(admin: TestClient) -> tuple[int, str]:
    assert admin.post("/api/v1/users", json={"name": "app-client", "role": "reader"}).status_code == 201
    resp = admin.post("/api/v1/tokens", json={"name": "app", "user": "app-client"})
    assert resp.status_code == 201, resp.text
    return resp.json()["id"], resp.json()["token"]


def _client(app_client: TestClient, token: str) -> TestClient:
    return TestClient(
        app_client.app, raise_server_exceptions=False, headers={"Authorization": f"Bearer {token}"}
    )


def test_a_revoked_token_is_refused_at_once_except_by_the_cached_client_routes(
    app_client: TestClient, admin: TestClient
) -> None:
    make_config(admin)
    publish(admin, is_stable=True)
    token_id, token = _token(admin)
    client = _client(app_client, token)
    assert client.get(f"{CFG}/resolve").status_code == 200
    assert admin.delete(f"/api/v1/tokens/{token_id}").status_code == 200
    assert client.get(CFG).status_code == 401  # not a cached route
    assert client.get(f"{CFG}/resolve").status_code == 200  # remembered for up to 5 s


def test_a_change_is_resolved_at_once_despite_the_resolve_cache(admin: TestClient) -> None:
    make_config(admin)
    first = publish(admin, is_stable=True)
    assert admin.get(f"{CFG}/resolve").json()["version"] == first["version"]["number"]
    assert admin.get(f"{CFG}/resolve").json()["version"] == first["version"]["number"]  # from memory
    second = publish(admin, "[pool]\nsize = 20\n", is_stable=True)
    assert admin.get(f"{CFG}/resolve").json()["version"] == second["version"]["number"]
    canary = {
        "rules": [{"priority": 10, "version": first["version"]["number"], "labels": {"canary": "true"}}]
    }
    assert admin.put(f"{CFG}/policy", json=canary).status_code == 200
    assert admin.get(f"{CFG}/resolve", params={"labels": "canary=true"}).json()["version"] == 1
    back = admin.post(f"{CFG}/releases", json={"version": 1})
    assert back.status_code == 201, back.text
    assert admin.get(f"{CFG}/resolve").json()["version"] == 1


class TestWithoutTheCache:
    @pytest.fixture
    def settings(self, settings: Settings, tmp_path: Path) -> Settings:
        return settings.model_copy(update={"auth_cache_seconds": 0.0})

    def test_resolve_refuses_a_revoked_token_at_once(self, app_client: TestClient, admin: TestClient) -> None:
        make_config(admin)
        publish(admin, is_stable=True)
        token_id, token = _token(admin)
        client = _client(app_client, token)
        assert client.get(f"{CFG}/resolve").status_code == 200
        assert admin.delete(f"/api/v1/tokens/{token_id}").status_code == 200
        assert client.get(f"{CFG}/resolve").status_code == 401
