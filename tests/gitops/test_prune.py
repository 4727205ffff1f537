"""Documents removed from Git, on real git repositories and the real config center, on both databases:
a commit that empties the repository, orphans reported (Argo CD's OutOfSync / requires pruning),
prune (off by default) deleting only what the source still owns, only after a clean sync, audited."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient
from sqlalchemy import select

from tests.gitops.conftest import (
    APP_ADDRESS,
    APP_CONFIG,
    APP_JSON,
    CONFIG,
    Write,
    add_source,
    git,
    git_commit,
    orphans,
    ready,
    results,
    set_secret,
    status,
    sync,
    versions,
)
from xcloudflow.db import Database
from xcloudflow.gitops.models import GitopsSource


def audit(admin: TestClient, action: str) -> list[dict[str, object]]:
    resp = admin.get("/api/v1/audit-logs", params={"action": action})
    assert resp.status_code == 200, resp.text
    items: list[dict[str, object]] = resp.json()["items"]
    return items


def test_a_commit_that_removes_every_document_syncs_and_reports_the_orphans(
    admin: TestClient, repo: Path
) -> None:
    set_secret(admin)
    add_source(admin, repo)
    assert results(sync(admin)) == {"production/database.yaml": "published"}
    git(repo, "rm", "-q", "-r", ".")
    commit = git_commit(repo, "remove everything")
    assert git(repo, "ls-tree", "HEAD") == ""  # the commit's tree is empty

    source = sync(admin)  # was a 500: tarfile.ReadError on the empty archive
    assert ready(source)["status"] == "True", source
    assert status(source)["last_synced_commit"] == commit
    assert status(source)["documents"] == []
    assert status(source)["sync_status"] == "OutOfSync"
    [orphan] = orphans(source)
    assert orphan["address"] == "my-tenant/app-a/production/database.toml"
    assert orphan["path"] == "production/database.yaml"
    assert orphan["version"] == 1 and orphan["requires_pruning"] is True
    assert "spec.prune is off" in str(orphan["message"])
    assert "1 orphaned (require pruning)" in ready(source)["message"]
    assert admin.get(CONFIG).status_code == 200  # prune is off: nothing deleted
    assert len(versions(admin)) == 1
    reasons = [e["reason"] for e in admin.get("/api/v1/gitops/sources/app-a/events").json()]
    assert "Orphaned" in reasons
    # still reported on the next sync of the same commit, not forgotten
    assert [o["address"] for o in orphans(sync(admin))] == [orphan["address"]]
    preview = admin.get("/api/v1/gitops/sources/app-a/diff")
    assert preview.status_code == 200, preview.text
    [shown] = preview.json()["documents"]
    assert (shown["action"], shown["address"], shown["from_version"]) == ("orphan", orphan["address"], 1)
    assert "requires pruning (spec.prune is off)" in shown["message"]


def test_prune_deletes_what_left_git_and_a_returning_document_is_no_orphan(
    admin: TestClient, repo: Path, write: Write
) -> None:
    set_secret(admin)
    write("production/app.yaml", APP_CONFIG)
    git_commit(repo)
    created = add_source(admin, repo, prune=True)
    assert created["prune"] is True
    sync(admin)
    assert admin.get(APP_JSON).status_code == 200

    (repo / "production" / "app.yaml").unlink()
    commit = git_commit(repo, "drop app.json")
    preview = admin.get("/api/v1/gitops/sources/app-a/diff").json()  # the pull-request view first
    assert {d["path"]: d["action"] for d in preview["documents"]} == {
        "production/database.yaml": "unchanged",
        "production/app.yaml": "delete",
    }
    assert "0 failing, 1 to delete, 0 orphaned" in preview["markdown"]
    assert f"| production/app.yaml | {APP_ADDRESS} | delete (v1) | - |" in preview["markdown"]
    assert admin.get(APP_JSON).status_code == 200  # the dry run deleted nothing
    source = sync(admin)
    assert results(source) == {"production/database.yaml": "unchanged", "production/app.yaml": "pruned"}
    assert orphans(source) == []
    assert status(source)["sync_status"] == "Synced"
    assert admin.get(APP_JSON).status_code == 404
    assert admin.get(CONFIG).status_code == 200
    [deleted] = audit(admin, "conflux.config.delete")
    assert deleted["actor"] == "gitops:app-a" and deleted["resource"] == f"conflux/{APP_ADDRESS}"
    synced = audit(admin, "gitops.sync")[0]
    assert synced["details"]["commit"] == commit  # type: ignore[index]
    assert synced["details"]["pruned_configs"] == [APP_ADDRESS]  # type: ignore[index]
    reasons = [e["reason"] for e in admin.get("/api/v1/gitops/sources/app-a/events").json()]
    assert "Pruned" in reasons
    # nothing left to prune: the next sync deletes nothing more
    assert results(sync(admin)) == {"production/database.yaml": "unchanged"}
    assert len(audit(admin, "conflux.config.delete")) == 1

    write("production/app.yaml", APP_CONFIG)  # the document comes back: published anew
    git_commit(repo, "app.json again")
    assert results(sync(admin))["production/app.yaml"] == "published"


def test_orphan_without_prune_then_back_in_git(admin: TestClient, repo: Path, write: Write) -> None:
    set_secret(admin)
    write("production/app.yaml", APP_CONFIG)
    git_commit(repo)
    assert add_source(admin, repo)["prune"] is False
    sync(admin)
    (repo / "production" / "app.yaml").unlink()
    git_commit(repo)
    source = sync(admin)
    assert [o["address"] for o in orphans(source)] == [APP_ADDRESS]
    assert admin.get(APP_JSON).status_code == 200
    write("production/app.yaml", APP_CONFIG)
    git_commit(repo)
    back = sync(admin)
    assert orphans(back) == [] and results(back)["production/app.yaml"] == "unchanged"
    assert status(back)["sync_status"] == "Synced"


def test_prune_waits_for_a_clean_sync_and_spares_configs_taken_over(
    admin: TestClient, repo: Path, write: Write
) -> None:
    set_secret(admin)
    write("production/app.yaml", APP_CONFIG)
    write("production/cache.yaml", APP_CONFIG.replace("app.json", "cache.json"))
    git_commit(repo)
    add_source(admin, repo, prune=True)
    sync(admin)
    # A person publishes a version of cache.json: it is no longer the source's to delete.
    cache = "/api/v1/conflux/configs/my-tenant/app-a/production/cache.json"
    resp = admin.post(cache + "/publish", json={"content": '{"pool": 9}'})
    assert resp.status_code in (200, 201), resp.text

    # One commit removes both files and breaks another document: nothing is pruned.
    (repo / "production" / "app.yaml").unlink()
    (repo / "production" / "cache.yaml").unlink()
    write("production/broken.yaml", "apiVersion: gitops.conflux.io/v1alpha1\nkind: ConfluxConfig\nspec: {}\n")
    git_commit(repo)
    source = sync(admin)
    assert "pruned" not in results(source).values()
    assert [o["address"] for o in orphans(source)] == [APP_ADDRESS]  # cache.json was taken over
    assert "not pruned: 1 document of this commit failed" in str(orphans(source)[0]["message"])
    assert admin.get(APP_JSON).status_code == 200

    (repo / "production" / "broken.yaml").unlink()
    git_commit(repo, "fix")
    source = sync(admin)
    assert results(source)["production/app.yaml"] == "pruned"
    assert admin.get(APP_JSON).status_code == 404
    assert admin.get(cache).status_code == 200  # taken over: never deleted, never reported
    assert orphans(source) == []


def test_sources_stored_before_prune_keep_their_tracking(
    admin: TestClient, repo: Path, write: Write, db: Database
) -> None:
    """Rows written by the previous version hold a plain list of results in `documents`."""
    set_secret(admin)
    write("production/app.yaml", APP_CONFIG)
    git_commit(repo)
    add_source(admin, repo)
    source = sync(admin)
    with db.write() as session:
        row = session.scalars(select(GitopsSource)).one()
        row.documents = status(source)["documents"]  # type: ignore[assignment]
    assert admin.get("/api/v1/gitops/sources/app-a").json()["prune"] is False
    (repo / "production" / "app.yaml").unlink()
    git_commit(repo)
    assert [o["address"] for o in orphans(sync(admin))] == [APP_ADDRESS]


def test_the_seed_source_document_takes_spec_prune(admin: TestClient, repo: Path) -> None:
    document = {
        "apiVersion": "gitops.conflux.io/v1alpha1",
        "kind": "ConfluxSource",
        "metadata": {"name": "app-a"},
        "spec": {"url": str(repo), "ref": {"branch": "main"}, "prune": True},
    }
    resp = admin.post("/api/v1/gitops/sources", json=document)
    assert resp.status_code == 201, resp.text
    assert resp.json()["prune"] is True
    assert admin.get("/api/v1/gitops/sources/app-a").json()["prune"] is True
    [created] = audit(admin, "gitops.source.create")
    assert created["details"]["prune"] is True  # type: ignore[index]
