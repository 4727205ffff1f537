"""The long-poll watch over a live server (uvicorn in a thread) on both databases: a watch returns
within a second of a publish made by another client, also when the publish goes to another replica
(PostgreSQL NOTIFY; SQLite polling), filters by names, and answers 304 when nothing changed."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.conftest import ADMIN_TOKEN, serve_app
from xcloudflow.db import Database
from xcloudflow.server.app import create_app
from xcloudflow.settings import Settings

API = "/api/v1/conflux"
ENV = {"tenant": "default", "application": "app-a", "environment": "production"}
CFG = f"{API}/configs/default/app-a/production"
AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


@pytest.fixture
def fast_settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"conflux_watch_poll_seconds": 0.2})


@pytest.fixture
def replicas(fast_settings: Settings, db: Database) -> Iterator[tuple[str, str]]:
    """Two servers on the same database, like two replicas behind a load balancer."""
    one, stop_one = serve_app(create_app(fast_settings, maintenance=False))
    two, stop_two = serve_app(create_app(fast_settings, maintenance=False))
    yield one, two
    stop_one()
    stop_two()


def _client(base: str) -> httpx.Client:
    return httpx.Client(base_url=base, headers=AUTH, timeout=90)


def _setup(client: httpx.Client, *names: str) -> int:
    for name in names:
        assert client.put(f"{CFG}/{name}", json={"format": "json"}).status_code == 201
    resp = client.get(f"{API}/watch", params=ENV)
    assert resp.status_code == 200 and resp.json()["notifications"] == []
    last: int = resp.json()["last_id"]
    return last


def _watch_in_thread(base: str, params: dict[str, Any], box: dict[str, Any]) -> threading.Thread:
    def run() -> None:
        with _client(base) as client:
            resp = client.get(f"{API}/watch", params={**ENV, **params})
            box["at"] = time.monotonic()
            box["status"] = resp.status_code
            box["body"] = resp.json() if resp.status_code == 200 else None

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


@pytest.mark.parametrize("across_replicas", [False, True], ids=["same-server", "other-replica"])
def test_watch_returns_within_a_second_of_a_publish(replicas: tuple[str, str], across_replicas: bool) -> None:
    one, two = replicas
    with _client(one) as client:
        since = _setup(client, "db.json")
    box: dict[str, Any] = {}
    watcher = _watch_in_thread(one, {"since": since, "timeout": 30}, box)
    time.sleep(0.5)  # the watcher is waiting
    assert "status" not in box
    with _client(two if across_replicas else one) as publisher:
        resp = publisher.post(f"{CFG}/db.json/publish", json={"content": '{"a": 1}', "is_stable": True})
        published = time.monotonic()
        assert resp.status_code == 201, resp.text
    watcher.join(timeout=10)
    assert box["status"] == 200, box
    assert box["at"] - published < 1.0
    notes = box["body"]["notifications"]
    assert [(n["address"], n["kind"], n["version"]) for n in notes] == [
        ("default/app-a/production/db.json", "release", 1)
    ]
    assert box["body"]["last_id"] == notes[-1]["id"] > since


def test_watch_filters_by_names_and_times_out(replicas: tuple[str, str]) -> None:
    one, _ = replicas
    with _client(one) as client:
        since = _setup(client, "db.json", "cache.json")
        box: dict[str, Any] = {}
        watcher = _watch_in_thread(one, {"since": since, "names": "cache.json", "timeout": 20}, box)
        time.sleep(0.5)
        assert client.post(f"{CFG}/db.json/publish", json={"content": "{}"}).status_code == 201
        time.sleep(0.8)
        assert "status" not in box  # a change to another config does not wake it
        assert client.post(f"{CFG}/cache.json/publish", json={"content": "{}"}).status_code == 201
        watcher.join(timeout=10)
        assert box["status"] == 200
        assert [n["name"] for n in box["body"]["notifications"]] == ["cache.json"]
        # A watcher that is behind gets what it missed at once, in order.
        resp = client.get(f"{API}/watch", params={**ENV, "since": since, "timeout": 5})
        assert [n["name"] for n in resp.json()["notifications"]] == ["db.json", "cache.json"]
        last = resp.json()["last_id"]
        started = time.monotonic()
        resp = client.get(f"{API}/watch", params={**ENV, "since": last, "timeout": 1})
        assert resp.status_code == 304 and 0.9 < time.monotonic() - started < 5
        bad = client.get(f"{API}/watch", params={**ENV, "since": last, "timeout": 61})
        assert bad.status_code == 422
        assert client.get(f"{API}/watch", params={**ENV, "tenant": "../x"}).status_code == 400


def test_many_watchers_wake_together(replicas: tuple[str, str]) -> None:
    one, _ = replicas
    with _client(one) as client:
        since = _setup(client, "db.json")
    boxes: list[dict[str, Any]] = [{} for _ in range(20)]
    threads = [_watch_in_thread(one, {"since": since, "timeout": 30}, box) for box in boxes]
    time.sleep(1.0)
    with _client(one) as client:
        assert (
            client.post(f"{CFG}/db.json/publish", json={"content": "{}", "is_stable": True}).status_code
            == 201
        )
        published = time.monotonic()
    for thread in threads:
        thread.join(timeout=10)
    assert all(b["status"] == 200 for b in boxes)
    assert max(b["at"] for b in boxes) - published < 1.0
