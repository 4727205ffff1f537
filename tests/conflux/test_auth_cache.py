"""Config clients poll resolve and watch, so those two routes remember a token's principal briefly
(`XCF_AUTH_CACHE_SECONDS`): a revoked token keeps working there for at most that long, and every other
route refuses it at once. With the cache off, resolve refuses it at once too."""

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
