"""PATCH a source's prune and suspend (API and `xcf gitops source set`): turning prune on deletes the
orphans at the next sync; resuming makes the source due; writers only; audited."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient

from tests.gitops.conftest import (
    APP_ADDRESS,
    APP_CONFIG,
    APP_JSON,
    Write,
    add_source,
    git_commit,
    orphans,
    results,
    set_secret,
    sync,
)
from tests.gitops.test_cli import xcf

SOURCE = "/api/v1/gitops/sources/app-a"


def test_turning_prune_on_deletes_the_orphans_at_the_next_sync(
    admin: TestClient, repo: Path, write: Write
) -> None:
    set_secret(admin)
    write("production/app.yaml", APP_CONFIG)
    git_commit(repo)
    add_source(admin, repo)
    sync(admin)
    (repo / "production" / "app.yaml").unlink()
    git_commit(repo)
    assert [o["address"] for o in orphans(sync(admin))] == [APP_ADDRESS]

    resp = admin.patch(SOURCE, json={"prune": True})
    assert resp.status_code == 200, resp.text
    assert resp.json()["prune"] is True and resp.json()["suspend"] is False
    assert admin.get(APP_JSON).status_code == 200  # nothing happens before the sync
    source = sync(admin)
    assert results(source)["production/app.yaml"] == "pruned"
    assert admin.get(APP_JSON).status_code == 404
    [audited] = admin.get("/api/v1/audit-logs", params={"action": "gitops.source.update"}).json()["items"]
    assert audited["details"] == {"prune": True} and audited["actor"] == "admin"
    reasons = [e["reason"] for e in admin.get(SOURCE + "/events").json()]
    assert "Updated" in reasons
    # the same value again changes nothing and audits nothing
    assert admin.patch(SOURCE, json={"prune": True}).status_code == 200
    assert (
        len(admin.get("/api/v1/audit-logs", params={"action": "gitops.source.update"}).json()["items"]) == 1
    )


def test_suspend_and_resume(admin: TestClient, repo: Path) -> None:
    add_source(admin, repo)
    suspended = admin.patch(SOURCE, json={"suspend": True}).json()
    assert suspended["suspend"] is True and suspended["status"]["next_sync_at"] is None
    resumed = admin.patch(SOURCE, json={"suspend": False}).json()
    assert resumed["suspend"] is False and resumed["status"]["next_sync_at"] is not None
    assert resumed["prune"] is False


def test_bad_updates_and_permissions(
    admin: TestClient, reader: TestClient, anon: TestClient, repo: Path
) -> None:
    add_source(admin, repo)
    for body in ({}, {"prune": None}, {"prune": "maybe"}, {"url": "https://example.com/r.git"}):
        resp = admin.patch(SOURCE, json=body)
        assert resp.status_code == 422, (body, resp.text)
    assert admin.patch("/api/v1/gitops/sources/nope", json={"prune": True}).status_code == 404
    assert anon.patch(SOURCE, json={"prune": True}).status_code == 401
    assert reader.patch(SOURCE, json={"prune": True}).status_code == 403
    assert admin.get(SOURCE).json()["prune"] is False


def test_source_set_from_the_command_line(live_server: str, repo: Path) -> None:
    assert xcf(live_server, "gitops", "source", "add", "app-a", "--url", str(repo)).exit_code == 0
    done = xcf(live_server, "gitops", "source", "set", "app-a", "--prune", "--suspend")
    assert done.exit_code == 0, done.output
    assert "source app-a: prune true, suspend true" in done.output
    assert xcf(live_server, "gitops", "source", "set", "app-a").exit_code == 2
    status = xcf(live_server, "gitops", "status", "app-a")
    assert "Prune:        true" in status.output and "Suspend:      true" in status.output
