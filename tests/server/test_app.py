"""Health, readiness, metrics, OpenAPI and the error format on every kind of failure."""

from __future__ import annotations

from fastapi.testclient import TestClient

from tests.factories import tf_state
from tests.state.test_backend_api import post_state
from xcloudflow.db import Database, migrate
from xcloudflow.server.app import create_app
from xcloudflow.settings import Settings


def test_health_and_ready(anon: TestClient) -> None:
    assert anon.get("/healthz").json() == {"status": "ok"}
    ready = anon.get("/readyz")
    assert ready.status_code == 200 and ready.json()["migration"] == migrate.head_revision()


def test_not_ready_when_migrations_behind(settings: Settings, db: Database) -> None:
    migrate.downgrade(db, "base")
    with TestClient(create_app(settings, maintenance=False)) as client:
        resp = client.get("/readyz")
    assert resp.status_code == 503 and resp.json()["error"]["code"] == "not_ready"
    migrate.upgrade(db)


def test_not_ready_when_database_unreachable(tmp_path) -> None:  # type: ignore[no-untyped-def]
    settings = Settings(
        data_dir=tmp_path,
        database_url="postgresql+psycopg://nobody@127.0.0.1:1/none",
        encryption_key="MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=",
    )
    with TestClient(create_app(settings, maintenance=False)) as client:
        resp = client.get("/readyz")
        assert resp.status_code == 503
        assert "nobody" not in resp.text  # no connection details leak
        assert client.get("/healthz").status_code == 200


def test_metrics_need_a_token_and_count_requests(admin: TestClient, anon: TestClient) -> None:
    post_state(admin, tf_state())
    assert anon.get("/metrics").status_code == 401
    text = admin.get("/metrics").text
    assert "xcf_http_requests_total" in text and 'route="/terraform/state/{project}/{stack}"' in text
    assert "xcf_state_writes_total" in text


def test_openapi_documents_the_api(anon: TestClient) -> None:
    spec = anon.get("/api/openapi.json").json()
    assert "/api/v1/stacks/{tool}/{project}/{stack}/rollback" in spec["paths"]
    assert "/terraform/state/{project}/{stack}" in spec["paths"]
    assert anon.get("/api/docs").status_code == 200


def test_errors_are_json(admin: TestClient) -> None:
    resp = admin.get("/nowhere")
    assert resp.status_code == 404 and resp.json()["error"]["code"] == "not_found"
    resp = admin.put("/api/v1/stacks")
    assert resp.status_code == 405 and resp.json()["error"]["code"] == "method_not_allowed"
    resp = admin.get("/api/v1/stacks", params={"limit": "many"})
    assert resp.status_code == 422
    assert resp.json()["error"]["details"][0]["field"] == "query.limit"


def test_unexpected_errors_hide_internals(settings: Settings, db: Database) -> None:
    app = create_app(settings, maintenance=False)

    @app.get("/boom")
    def boom() -> None:
        raise RuntimeError("secret internal detail")

    with TestClient(app, raise_server_exceptions=False) as client:
        resp = client.get("/boom")
    assert resp.status_code == 500
    assert "secret internal detail" not in resp.text and "Traceback" not in resp.text
    assert resp.json()["error"]["code"] == "internal"
