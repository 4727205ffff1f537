"""GitOps sync against real git repositories and the real config center, on both databases: the
seed's flow, idempotency, new commits, every bad input of the issue, and secrets never shown."""

from __future__ import annotations

import json
import logging
from datetime import timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from tests.gitops.conftest import (
    APP_CONFIG,
    APP_JSON,
    CONFIG,
    SECRET,
    SEED_CONFIG,
    Write,
    add_source,
    documents,
    git_commit,
    head,
    ready,
    set_secret,
    sync,
    versions,
)
from xcloudflow.db import Database
from xcloudflow.db.base import utcnow
from xcloudflow.gitops import sync as gitops_sync
from xcloudflow.keys.keyring import Keyring
from xcloudflow.settings import LocalRoots, Settings


def events(client: TestClient, name: str = "app-a") -> list[dict[str, object]]:
    resp = client.get(f"/api/v1/gitops/sources/{name}/events")
    assert resp.status_code == 200, resp.text
    items: list[dict[str, object]] = resp.json()
    return items


def assert_no_secret(*texts: str) -> None:
    for text in texts:
        assert SECRET not in text


def test_the_seed_flow_publishes_the_rendered_config(admin: TestClient, repo: Path) -> None:
    set_secret(admin)
    created = add_source(admin, repo)
    assert len(str(created["webhook_secret"])) >= 32
    assert ready(created)["status"] == "Unknown"
    source = sync(admin)
    commit = head(repo)
    assert ready(source)["status"] == "True", source
    assert ready(source)["reason"] == "Synced"
    assert source["status"]["last_synced_commit"] == commit  # type: ignore[index]
    assert source["status"]["last_fetched_commit"] == commit  # type: ignore[index]
    assert documents(source) == [
        {
            "path": "production/database.yaml",
            "line": 1,
            "address": "my-tenant/app-a/production/database.toml",
            "result": "published",
            "version": 1,
            "message": None,
        }
    ]
    version = admin.get(CONFIG + "/versions/1").json()
    assert version["content"].endswith(f'password = "{SECRET}"\n')
    assert version["source"] == f"gitops:{commit}"
    assert version["author"] == "gitops:app-a"
    assert version["stable"] is True
    config = admin.get(CONFIG).json()
    assert config["format"] == "toml" and config["stable"]["number"] == 1
    reasons = [e["reason"] for e in events(admin)]
    assert reasons[:3] == ["Synced", "Published", "NewCommit"] and "Created" in reasons
    listed = admin.get("/api/v1/gitops/sources").json()
    assert [s["name"] for s in listed] == ["app-a"]
    assert "webhook_secret" not in listed[0]
    assert_no_secret(json.dumps(source), json.dumps(listed), json.dumps(events(admin)))


def test_rerunning_a_commit_changes_nothing_and_a_new_commit_publishes_only_what_changed(
    admin: TestClient, repo: Path, write: Write
) -> None:
    set_secret(admin)
    write("production/app.yaml", APP_CONFIG)
    git_commit(repo)
    add_source(admin, repo)
    first = sync(admin)
    assert [d["result"] for d in documents(first)] == ["published", "published"]
    again = sync(admin, force=True)
    assert [d["result"] for d in documents(again)] == ["unchanged", "unchanged"]
    if_new = sync(admin, force=False)  # the commit is synced: nothing is even rendered
    assert documents(if_new) == documents(again)
    assert len(versions(admin)) == 1

    write("production/app.yaml", APP_CONFIG.replace("size: 3", "size: 4"))
    commit = git_commit(repo, "bigger pool")
    after = sync(admin, force=False)
    results = {d["path"]: (d["result"], d["version"]) for d in documents(after)}
    assert results == {"production/app.yaml": ("published", 2), "production/database.yaml": ("unchanged", 1)}
    assert after["status"]["last_synced_commit"] == commit  # type: ignore[index]
    assert admin.get(APP_JSON + "/versions/2").json()["content"] == '{"pool": 4}\n'
    assert len(versions(admin)) == 1  # the database config did not change


def test_a_repository_that_cannot_be_fetched(
    admin: TestClient, tmp_path: Path, settings: Settings, db: Database
) -> None:
    missing = tmp_path / "repos" / "missing"
    add_source(admin, missing, name="gone")
    source = sync(admin, "gone")
    assert ready(source)["status"] == "False"
    assert ready(source)["reason"] == "FetchFailed"
    assert source["status"]["sync_status"] == "Unknown"  # type: ignore[index]
    assert "no such directory" in ready(source)["message"]
    assert events(admin, "gone")[0]["type"] == "Warning"

    outside = admin.post("/api/v1/gitops/sources", json={"name": "outside", "url": "/etc"})
    assert outside.status_code == 422 and "XCF_GITOPS_LOCAL_ROOTS" in outside.text  # refused at add
    # ... and at every sync, when the allowed roots changed since the source was added.
    no_roots = gitops_sync.SyncOptions(local_roots=LocalRoots({}), git_timeout=30)
    refused = gitops_sync.sync_source(
        db=db, keyring=Keyring.from_settings(settings), options=no_roots, org_id=1, name="gone"
    )
    assert "XCF_GITOPS_LOCAL_ROOTS" in refused.status.conditions[0].message

    resp = admin.post(
        "/api/v1/gitops/sources",
        json={"name": "web", "url": "https://127.0.0.1:9/none.git", "ref": {"branch": "main"}},
    )
    assert resp.status_code == 201
    remote = sync(admin, "web")
    assert ready(remote)["reason"] == "FetchFailed" and "cannot fetch repository" in ready(remote)["message"]


def test_unknown_ref_and_missing_path(admin: TestClient, repo: Path) -> None:
    add_source(admin, repo, name="badref", ref={"branch": "nope"})
    assert "unknown ref 'nope'" in ready(sync(admin, "badref"))["message"]
    add_source(admin, repo, name="badpath", path="staging")
    source = sync(admin, "badpath")
    assert ready(source)["reason"] == "SyncFailed"
    assert "path 'staging' is not a directory" in ready(source)["message"]


def test_bad_documents_fail_alone_with_file_and_line(admin: TestClient, repo: Path, write: Write) -> None:
    set_secret(admin)
    write(
        "bad/broken.yaml", "apiVersion: gitops.conflux.io/v1alpha1\nkind: ConfluxConfig\nmetadata: {name: x\n"
    )
    write(
        "bad/sandbox.yaml",
        SEED_CONFIG.replace("database.toml", "s.toml").replace(
            "{{ .Secrets.database_password }}", "{{ ''.__class__.__mro__[1].__subclasses__() }}"
        ),
    )
    write(
        "bad/missing-key.yaml",
        SEED_CONFIG.replace("database.toml", "m.toml").replace("database_password", "nope"),
    )
    write(
        "bad/no-secret.yaml",
        SEED_CONFIG.replace("database.toml", "n.toml").replace("db-credentials", "absent"),
    )
    write(
        "bad/invalid.yaml",
        SEED_CONFIG.replace("database.toml", "i.toml").replace(
            'host = "db.prod.svc.cluster.local"', 'host = "unterminated'
        ),
    )
    write(
        "bad/schema.yaml",
        APP_CONFIG.replace("app.json", "schema.json")
        .replace(
            "values: {size: 3}",
            "schema: {type: object, properties: {pool: {type: integer}}}\n  secretsRef: {name: db-credentials}",
        )
        .replace("{{ .Values.size }}", '"{{ .Secrets.database_password }}"'),
    )
    write("zz/dup.yaml", SEED_CONFIG)
    git_commit(repo)
    add_source(admin, repo)
    source = sync(admin)
    by_path = {d["path"]: d for d in documents(source)}
    assert by_path["production/database.yaml"]["result"] == "published"
    failed = {p: (d["line"], d["message"]) for p, d in by_path.items() if d["result"] == "failed"}
    assert set(failed) == {
        "bad/broken.yaml",
        "bad/sandbox.yaml",
        "bad/missing-key.yaml",
        "bad/no-secret.yaml",
        "bad/invalid.yaml",
        "bad/schema.yaml",
        "zz/dup.yaml",
    }
    assert "invalid YAML" in failed["bad/broken.yaml"][1]
    assert failed["bad/sandbox.yaml"][0] == 14 and "sandbox violation" in failed["bad/sandbox.yaml"][1]
    assert failed["bad/missing-key.yaml"] == (
        14,
        "spec.template.content: undefined: secret 'db-credentials' has no key 'nope'",
    )
    assert failed["bad/no-secret.yaml"][0] == 18 and "secret 'absent'" in failed["bad/no-secret.yaml"][1]
    assert failed["bad/invalid.yaml"][1].startswith("rendered content: invalid toml at line 2, column 21")
    # The schema's message quotes the value: a secret, masked.
    assert "$.pool: '******' is not of type 'integer'" in failed["bad/schema.yaml"][1]
    assert "also defined by production/database.yaml:1" in failed["zz/dup.yaml"][1]
    assert ready(source)["status"] == "False" and ready(source)["reason"] == "DocumentsFailed"
    assert source["status"]["last_synced_commit"] is None  # type: ignore[index]
    # Nothing half-published: the failed documents' configs were not even created.
    for name in ("i.toml", "s.toml", "m.toml", "n.toml"):
        assert admin.get(f"/api/v1/conflux/configs/my-tenant/app-a/production/{name}").status_code == 404
    assert admin.get("/api/v1/conflux/configs/my-tenant/app-a/production/schema.json").status_code == 404
    texts = [
        json.dumps(source),
        json.dumps(events(admin)),
        json.dumps(admin.get("/api/v1/audit-logs").json()),
    ]
    assert_no_secret(*texts)
    warnings = [e for e in events(admin) if e["reason"] == "DocumentFailed"]
    assert any("bad/sandbox.yaml:14" in str(e["message"]) for e in warnings)


def test_a_missing_secret_then_set_is_picked_up_by_the_interval_sync(
    admin: TestClient, repo: Path, settings: Settings, db: Database, caplog: pytest.LogCaptureFixture
) -> None:
    add_source(admin, repo)
    keyring = Keyring.from_settings(settings)
    options = gitops_sync.SyncOptions(local_roots=settings.gitops_roots, git_timeout=30)
    caplog.set_level(logging.DEBUG)
    assert gitops_sync.run_due(db=db, keyring=keyring, options=options) == 1
    source = admin.get("/api/v1/gitops/sources/app-a").json()
    assert documents(source)[0]["result"] == "failed"
    assert "does not exist" in str(documents(source)[0]["message"])
    assert gitops_sync.run_due(db=db, keyring=keyring, options=options) == 0  # not due for a minute
    set_secret(admin)
    later = utcnow() + timedelta(seconds=61)
    assert gitops_sync.run_due(db=db, keyring=keyring, options=options, now=later) == 1
    source = admin.get("/api/v1/gitops/sources/app-a").json()
    assert ready(source)["status"] == "True"
    assert documents(source)[0]["result"] == "published"
    # The same commit with a rotated secret renders differently: a forced sync publishes it too.
    set_secret(admin, database_password=SECRET + "-rotated")
    rotated = sync(admin)
    assert documents(rotated)[0]["result"] == "published" and documents(rotated)[0]["version"] == 2
    assert SECRET not in caplog.text


def test_webhook_is_hmac_verified_and_requests_a_sync(
    admin: TestClient, anon: TestClient, repo: Path, settings: Settings, db: Database
) -> None:
    import hashlib
    import hmac

    set_secret(admin)
    secret = str(add_source(admin, repo)["webhook_secret"]).encode()
    keyring = Keyring.from_settings(settings)
    options = gitops_sync.SyncOptions(local_roots=settings.gitops_roots, git_timeout=30)
    gitops_sync.run_due(db=db, keyring=keyring, options=options)  # the first, due at creation
    body = json.dumps({"ref": "refs/heads/main", "after": head(repo)}).encode()
    signature = "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()
    url = "/api/v1/gitops/webhook/app-a"
    assert anon.post(url, content=body).status_code == 401
    assert (
        anon.post(url, content=body, headers={"X-Hub-Signature-256": "sha256=" + "0" * 64}).status_code == 401
    )
    assert anon.post(url + "x", content=body, headers={"X-Hub-Signature-256": signature}).status_code == 401
    tampered = body.replace(b"main", b"evil")
    assert anon.post(url, content=tampered, headers={"X-Hub-Signature-256": signature}).status_code == 401
    other = json.dumps({"ref": "refs/heads/feature"}).encode()
    ignored = anon.post(
        url,
        content=other,
        headers={"X-Hub-Signature-256": "sha256=" + hmac.new(secret, other, hashlib.sha256).hexdigest()},
    )
    assert ignored.status_code == 200 and ignored.json()["accepted"] is False
    resp = anon.post(url, content=body, headers={"X-Hub-Signature-256": signature, "X-GitHub-Event": "push"})
    assert resp.status_code == 202, resp.text
    assert resp.json() == {"accepted": True, "message": "sync requested"}
    assert gitops_sync.run_due(db=db, keyring=keyring, options=options) == 1  # due now, not in a minute
    reasons = [e["reason"] for e in events(admin)]
    assert "WebhookReceived" in reasons and "WebhookIgnored" in reasons


def test_diff_previews_without_publishing_and_masks_secrets(
    admin: TestClient, reader: TestClient, repo: Path, write: Write
) -> None:
    set_secret(admin)
    add_source(admin, repo)
    preview = reader.get("/api/v1/gitops/sources/app-a/diff")
    assert preview.status_code == 200, preview.text
    body = preview.json()
    assert [d["action"] for d in body["documents"]] == ["create"]
    assert 'password = "******"' in body["markdown"]
    assert versions(admin) == []  # nothing published
    sync(admin)
    assert [d["action"] for d in reader.get("/api/v1/gitops/sources/app-a/diff").json()["documents"]] == [
        "unchanged"
    ]

    from tests.gitrepo import git

    git(repo, "checkout", "-q", "-b", "feature")
    write("production/database.yaml", SEED_CONFIG.replace("db.prod.svc", "db2.prod.svc"))
    write(
        "production/app.yaml", APP_CONFIG.replace("size: 3", "size: 'x'").replace('{"pool"', '{"pool" oops')
    )
    git_commit(repo, "feature change")
    git(repo, "checkout", "-q", "main")
    set_secret(admin, database_password=SECRET + "-rotated")
    preview = reader.get("/api/v1/gitops/sources/app-a/diff", params={"ref": "feature"}).json()
    actions = {d["path"]: d["action"] for d in preview["documents"]}
    assert actions == {"production/app.yaml": "failed", "production/database.yaml": "update"}
    update = next(d for d in preview["documents"] if d["action"] == "update")
    assert '-host = "db.prod.svc.cluster.local"' in update["diff"]
    assert '+host = "db2.prod.svc.cluster.local"' in update["diff"]
    # The secret changed too, but both sides show it masked: the line is unchanged context.
    assert ' password = "******"' in update["diff"]
    assert "-password" not in update["diff"] and "+password" not in update["diff"]
    markdown = preview["markdown"]
    assert "1 to update" in markdown and "production/app.yaml" in markdown and "```diff" in markdown
    assert_no_secret(json.dumps(preview))
    assert SECRET + "-rotated" not in json.dumps(preview)
    assert len(versions(admin)) == 1


def test_source_documents_and_bad_sources(admin: TestClient, repo: Path) -> None:
    seed = {
        "apiVersion": "gitops.conflux.io/v1alpha1",
        "kind": "ConfluxSource",
        "metadata": {"name": "app-a-config-repo"},
        "spec": {"interval": "1m", "url": str(repo), "ref": {"branch": "main"}},
    }
    resp = admin.post("/api/v1/gitops/sources", json=seed)
    assert resp.status_code == 201, resp.text
    assert resp.json()["ref"] == {"branch": "main", "tag": None, "commit": None}
    assert admin.post("/api/v1/gitops/sources", json=seed).status_code == 409
    bad = [
        ({**seed, "kind": "Other"}, 422),
        ({"name": "x", "url": str(repo), "interval": "1 minute"}, 400),
        ({"name": "x", "url": str(repo), "interval": "1s"}, 400),
        ({"name": "x", "url": "relative/path"}, 422),
        ({"name": "x", "url": "https://user:tok@example.com/r.git"}, 422),
        ({"name": "x", "url": "git@example.com:r.git", "secretRef": {"name": "s"}}, 422),
        ({"name": "x", "url": str(repo), "path": "../up"}, 400),
        ({"name": "x", "url": str(repo), "ref": {"branch": "a", "tag": "b"}}, 422),
        ({"name": "x", "url": str(repo), "ref": {"branch": "-x"}}, 400),
    ]
    for body, status in bad:
        resp = admin.post("/api/v1/gitops/sources", json=body)
        assert resp.status_code == status, (body, resp.text)
        assert "tok" not in resp.text
    assert admin.delete("/api/v1/gitops/sources/app-a-config-repo").status_code == 204
    assert admin.get("/api/v1/gitops/sources/app-a-config-repo").status_code == 404


def test_every_route_needs_a_token_and_the_right_role(
    admin: TestClient, anon: TestClient, reader: TestClient, repo: Path
) -> None:
    add_source(admin, repo)
    base = "/api/v1/gitops/sources"
    routes = [
        ("POST", base, {"name": "n", "url": str(repo)}),
        ("GET", base, None),
        ("GET", base + "/app-a", None),
        ("PATCH", base + "/app-a", {"prune": True}),
        ("DELETE", base + "/app-a", None),
        ("GET", base + "/app-a/events", None),
        ("POST", base + "/app-a/sync", None),
        ("GET", base + "/app-a/diff", None),
    ]
    for method, path, body in routes:
        assert anon.request(method, path, json=body).status_code == 401, (method, path)
    assert reader.post(base, json={"name": "n", "url": str(repo)}).status_code == 403
    assert reader.post(base + "/app-a/sync").status_code == 403
    assert reader.delete(base + "/app-a").status_code == 403
    assert reader.patch(base + "/app-a", json={"suspend": True}).status_code == 403
    assert reader.get(base + "/app-a").status_code == 200
    assert reader.get(base + "/app-a/events").status_code == 200
    assert anon.post("/api/v1/gitops/webhook/app-a", content=b"{}").status_code == 401
