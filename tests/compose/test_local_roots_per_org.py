"""Local repositories are an operator's grant per organization (XCF_COMPOSE_LOCAL_ROOTS): a second
organization cannot plan from the default organization's root, nor get its snapshot to an agent."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from tests.e2e.compose_helpers import make_repo
from xcloudflow.audit.schemas import AuditContext
from xcloudflow.db import Database
from xcloudflow.iam import service as iam
from xcloudflow.settings import LocalRoots, Settings

ENV = "qa"


def _org_client(admin: TestClient, db: Database, name: str) -> TestClient:
    with db.write() as session:
        token = iam.create_organization(
            session=session,
            ctx=AuditContext(actor="test", org_id=None),
            name=name,
            admin_name=f"{name}-admin",
        )
    client = TestClient(admin.app, raise_server_exceptions=False)
    client.headers["Authorization"] = f"Bearer {token}"
    return client


def _plan(client: TestClient, repo: Path) -> tuple[int, dict[str, object]]:
    resp = client.post("/api/v1/compose/changesets", json={"repo": str(repo), "environment": ENV})
    return resp.status_code, resp.json()


class TestPlainFormIsTheDefaultOrganizationOnly:
    @pytest.fixture
    def settings(self, settings: Settings, tmp_path: Path) -> Settings:
        return settings.model_copy(update={"compose_local_roots": str(tmp_path)})

    def test_the_other_organization_is_refused_and_nothing_is_stored(
        self, admin: TestClient, db: Database, tmp_path: Path
    ) -> None:
        repo = make_repo(tmp_path, env=ENV)
        other = _org_client(admin, db, "other")
        status, body = _plan(other, repo)
        assert status == 400, body
        message = str(body["error"]["message"])  # type: ignore[index]
        assert "XCF_COMPOSE_LOCAL_ROOTS" in message and "allowed: none" in message
        assert other.get("/api/v1/compose/changesets").json()["items"] == []
        assert other.get("/api/v1/jobs").json()["items"] == []
        # The default organization (the README's quickstart) still plans from the same root.
        status, body = _plan(admin, repo)
        assert status == 201, body


class TestMappingFormGrantsEachOrganizationItsOwnRoots:
    @pytest.fixture
    def settings(self, settings: Settings, tmp_path: Path) -> Settings:
        roots = f"default={tmp_path / 'default'};other={tmp_path / 'other'}"
        return settings.model_copy(update={"compose_local_roots": roots})

    def test_each_organization_reads_only_its_root(
        self, admin: TestClient, db: Database, tmp_path: Path
    ) -> None:
        mine = make_repo(tmp_path / "default", env=ENV)
        theirs = make_repo(tmp_path / "other", env=ENV)
        other = _org_client(admin, db, "other")
        assert _plan(other, mine)[0] == 400
        assert _plan(admin, theirs)[0] == 400
        assert _plan(admin, mine)[0] == 201
        status, body = _plan(other, theirs)
        assert status == 201, body


def test_the_setting_forms() -> None:
    assert LocalRoots.parse("").by_org == {}
    assert LocalRoots.parse("/srv/a:/srv/b").of("default") == [Path("/srv/a"), Path("/srv/b")]
    assert LocalRoots.parse("/srv/a").of("other") == []
    roots = LocalRoots.parse("default=/srv/a; team-b=/srv/b:/srv/c;")
    assert roots.of("team-b") == [Path("/srv/b"), Path("/srv/c")] and roots.of("default") == [Path("/srv/a")]
    with pytest.raises(ValueError, match="not ORG=PATH"):
        LocalRoots.parse("default=/srv/a;/srv/b")
    with pytest.raises(ValueError, match="not ORG=PATH"):
        Settings(compose_local_roots="=/srv/a")
    with pytest.raises(ValueError, match="not ORG=PATH"):  # a path with "=" is not an organization
        LocalRoots.parse("/srv/a=b")
