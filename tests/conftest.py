"""Shared fixtures: every database test runs on SQLite and on PostgreSQL.

PostgreSQL comes from XCF_TEST_DATABASE_URL (default postgresql://postgres@127.0.0.1:5432/test): a
fresh database is created for the session and migrated once; each test starts from empty tables
(TRUNCATE ... RESTART IDENTITY). SQLite tests each get a copy of a migrated template file. When
PostgreSQL is unreachable its half is skipped with the reason, except under CI=true where that fails.
"""

from __future__ import annotations

import os
import shutil
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text
from sqlalchemy.engine import make_url

from xcloudflow.db import Database
from xcloudflow.db import migrate as migrations
from xcloudflow.server.app import create_app, prepare
from xcloudflow.settings import Settings

ADMIN_TOKEN = "xcf_test_admin_" + "a" * 32
TEST_KEY = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="  # base64 of 32 bytes
PG_DEFAULT = "postgresql://postgres@127.0.0.1:5432/test"


def _pg_admin_url() -> str:
    return os.environ.get("XCF_TEST_DATABASE_URL", PG_DEFAULT)


def _sa_url(url: str, database: str | None = None) -> str:
    u = make_url(
        url.replace("postgresql://", "postgresql+psycopg://", 1) if url.startswith("postgresql://") else url
    )
    if database:
        u = u.set(database=database)
    return u.render_as_string(hide_password=False)


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    admin = Database(_sa_url(_pg_admin_url()))
    name = f"xcf_test_{uuid.uuid4().hex[:10]}"
    try:
        with admin.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as exc:  # unreachable server, bad credentials, ...
        admin.dispose()
        reason = f"PostgreSQL at {_pg_admin_url()} is not usable: {exc.__class__.__name__}: {exc}"
        if os.environ.get("CI") == "true":
            pytest.fail(reason + " (CI=true requires PostgreSQL)")
        pytest.skip(reason)
    url = _sa_url(_pg_admin_url(), name)
    db = Database(url)
    migrations.upgrade(db)
    db.dispose()
    yield url
    with admin.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("template") / "template.db"
    db = Database(f"sqlite:///{path}")
    migrations.upgrade(db)
    db.dispose()  # the last connection closing checkpoints the WAL into the file
    assert not path.with_name(path.name + "-wal").exists()
    return path


def _truncate(url: str) -> None:
    db = Database(url)
    with db.write() as session:
        tables = [
            r[0]
            for r in session.execute(
                text(
                    "SELECT tablename FROM pg_tables WHERE schemaname = current_schema() AND tablename <> 'alembic_version'"
                )
            )
        ]
        if tables:
            session.execute(
                text("TRUNCATE " + ", ".join(f'"{t}"' for t in tables) + " RESTART IDENTITY CASCADE")
            )
    db.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        target = tmp_path / "xcf.db"
        shutil.copy(request.getfixturevalue("sqlite_template"), target)
        return f"sqlite:///{target}"
    url: str = request.getfixturevalue("pg_url")
    _truncate(url)
    return url


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    return Settings(
        data_dir=tmp_path / "data",
        database_url=database_url,
        bootstrap_token=ADMIN_TOKEN,
        encryption_key=TEST_KEY,
        state_max_bytes=2 * 1024 * 1024,
        # Route-by-route 401 checks send hundreds of bad tokens from the one TestClient address; the
        # block they would earn is tested on its own (tests/server/test_edge.py).
        auth_failure_limit=0,
    )


@pytest.fixture
def db(settings: Settings) -> Iterator[Database]:
    prepare(settings)
    database = Database(settings.resolved_database_url)
    yield database
    database.dispose()


@pytest.fixture
def app_client(settings: Settings, db: Database) -> Iterator[TestClient]:
    app = create_app(settings, maintenance=False)
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client


def _client_for(app_client: TestClient, token: str | None) -> TestClient:
    client = TestClient(app_client.app, raise_server_exceptions=False)
    if token:
        client.headers["Authorization"] = f"Bearer {token}"
    return client


@pytest.fixture
def admin(app_client: TestClient) -> TestClient:
    return _client_for(app_client, ADMIN_TOKEN)


@pytest.fixture
def anon(app_client: TestClient) -> TestClient:
    return _client_for(app_client, None)


def make_user_token(admin: TestClient, name: str, role: str) -> str:
    assert admin.post("/api/v1/users", json={"name": name, "role": role}).status_code == 201
    resp = admin.post("/api/v1/tokens", json={"name": f"{name}-token", "user": name})
    assert resp.status_code == 201, resp.text
    token: str = resp.json()["token"]
    return token


@pytest.fixture
def writer(app_client: TestClient, admin: TestClient) -> TestClient:
    return _client_for(app_client, make_user_token(admin, "wendy", "writer"))


@pytest.fixture
def reader(app_client: TestClient, admin: TestClient) -> TestClient:
    return _client_for(app_client, make_user_token(admin, "rita", "reader"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def serve_app(app: Any, port: int | None = None) -> tuple[str, Callable[[], None]]:
    """`app` under a real uvicorn in a thread, for clients that speak real HTTP; returns its URL
    and a stop function."""
    import uvicorn

    port = port or free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(base + "/healthz", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            time.sleep(0.05)

    def stop() -> None:
        server.should_exit = True
        thread.join(timeout=30)

    return base, stop


@pytest.fixture
def live_server(settings: Settings, db: Database) -> Iterator[str]:
    """The real app under uvicorn in a thread, for clients that speak real HTTP (the CLI)."""
    base, stop = serve_app(create_app(settings, maintenance=False))
    yield base
    stop()
