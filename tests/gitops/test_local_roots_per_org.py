"""GitOps local sources are an operator's grant per organization (XCF_GITOPS_LOCAL_ROOTS): a second
organization's source pointing at the default organization's root never syncs, by a manual sync, a
preview or the server's interval loop."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient

from tests.gitops.conftest import add_source, set_secret, sync, versions
from xcloudflow.audit.schemas import AuditContext
from xcloudflow.db import Database
from xcloudflow.gitops import service as gitops_service
from xcloudflow.gitops import sync as gitops_sync
from xcloudflow.gitops.schemas import SourceCreate
from xcloudflow.iam import service as iam
from xcloudflow.keys.keyring import Keyring
from xcloudflow.settings import Settings


def _other_org(admin: TestClient, db: Database) -> TestClient:
    with db.write() as session:
        token = iam.create_organization(
            session=session, ctx=AuditContext(actor="test", org_id=None), name="other", admin_name="mallory"
        )
    client = TestClient(admin.app, raise_server_exceptions=False)
    client.headers["Authorization"] = f"Bearer {token}"
    return client


def _ready(source: dict[str, object]) -> dict[str, str]:
    conditions = source["status"]["conditions"]  # type: ignore[index]
    return next(c for c in conditions if c["type"] == "Ready")  # type: ignore[no-any-return]


def test_another_organization_cannot_sync_the_default_organizations_root(
    admin: TestClient, db: Database, repo: Path, settings: Settings
) -> None:
    other = _other_org(admin, db)
    set_secret(other)
    # Refused when the source is added (nothing stored) ...
    resp = other.post(
        "/api/v1/gitops/sources",
        json={"name": "app-a", "url": str(repo), "ref": {"branch": "main"}, "interval": "1m"},
    )
    assert resp.status_code == 422 and "allowed: none" in resp.text, resp.text
    assert other.get("/api/v1/gitops/sources").json() == []
    # ... and at every sync of a source stored before the operator withdrew the grant.
    token = other.headers["Authorization"].removeprefix("Bearer ")
    with db.write() as session:
        gitops_service.create_source(
            session=session,
            keyring=Keyring.from_settings(settings),
            principal=iam.authenticate(session=session, token=token),
            ctx=AuditContext(actor="test", org_id=None),
            body=SourceCreate.model_validate({"name": "app-a", "url": str(repo), "interval": "1m"}),
            local_roots=[repo.parent],
        )
    refused = sync(other)
    assert _ready(refused)["status"] == "False"
    assert "XCF_GITOPS_LOCAL_ROOTS" in _ready(refused)["message"]
    assert "allowed: none" in _ready(refused)["message"]
    assert versions(other) == []
    preview = other.get("/api/v1/gitops/sources/app-a/diff")
    assert preview.status_code == 400 and "XCF_GITOPS_LOCAL_ROOTS" in preview.text, preview.text
    # The server's interval loop reads with each source's own organization's roots too.
    options = gitops_sync.SyncOptions(local_roots=settings.gitops_roots, git_timeout=30)
    gitops_sync.run_due(db=db, keyring=Keyring.from_settings(settings), options=options)
    assert versions(other) == []
    # The default organization (plain form of the setting) still syncs the same repository.
    set_secret(admin)
    add_source(admin, repo)
    assert _ready(sync(admin))["status"] == "True"
    assert len(versions(admin)) == 1
