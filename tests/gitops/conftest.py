"""Fixtures of the GitOps tests: settings whose local roots allow tmp_path, and a real git repository
of ConfluxConfig documents (the seed's example first) made with the git CLI."""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from tests.conftest import ADMIN_TOKEN, TEST_KEY
from tests.gitrepo import commit_all, git, init_repo
from xcloudflow.settings import Settings

__all__ = ["SECRET", "SEED_CONFIG", "commit_all", "git"]

SECRET = "s3cr3t-Pa55word-never-shown"

# The seed's ConfluxConfig example (seed 002, section 1b), byte for byte apart from the comments.
SEED_CONFIG = """\
apiVersion: gitops.conflux.io/v1alpha1
kind: ConfluxConfig
metadata:
  name: database.toml # will be the config name in Conflux
  namespace: my-tenant # will be the tenant in Conflux
spec:
  application: app-a
  environment: production
  format: toml
  template:
    content: |
      # Go-template syntax, may reference secrets
      host = "db.prod.svc.cluster.local"
      password = "{{ .Secrets.database_password }}"

  # the secret holding the values
  secretsRef:
    name: db-credentials
"""


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    return Settings(
        data_dir=tmp_path / "data",
        database_url=database_url,
        bootstrap_token=ADMIN_TOKEN,
        encryption_key=TEST_KEY,
        gitops_local_roots=str(tmp_path / "repos"),
        gitops_git_timeout_seconds=30,
    )


Write = Callable[[str, str], Path]


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A git repository (branch main) holding production/database.yaml (the seed's example) and an
    unrelated YAML file."""
    root = tmp_path / "repos" / "configs"
    (root / "production").mkdir(parents=True)
    (root / "production" / "database.yaml").write_text(SEED_CONFIG)
    (root / "ci.yaml").write_text("name: not a config\non: [push]\n")
    init_repo(root)
    return root


@pytest.fixture
def write(repo: Path) -> Write:
    """write("rel/path.yaml", text) into the repository (dedented); commit with commit_all(repo)."""

    def _write(rel: str, text: str) -> Path:
        path = repo / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip("\n"))
        return path

    return _write


def add_source(client: TestClient, repo: Path, name: str = "app-a", **extra: object) -> dict[str, object]:
    resp = client.post(
        "/api/v1/gitops/sources",
        json={"name": name, "url": str(repo), "ref": {"branch": "main"}, "interval": "1m", **extra},
    )
    assert resp.status_code == 201, resp.text
    body: dict[str, object] = resp.json()
    return body


def set_secret(client: TestClient, name: str = "db-credentials", **data: str) -> None:
    resp = client.put(f"/api/v1/secrets/{name}", json={"data": data or {"database_password": SECRET}})
    assert resp.status_code in (200, 201), resp.text


def sync(client: TestClient, name: str = "app-a", force: bool = True) -> dict[str, object]:
    resp = client.post(f"/api/v1/gitops/sources/{name}/sync", params={"force": str(force).lower()})
    assert resp.status_code == 200, resp.text
    body: dict[str, object] = resp.json()
    return body


CONFIG = "/api/v1/conflux/configs/my-tenant/app-a/production/database.toml"


def versions(client: TestClient, path: str = CONFIG) -> list[dict[str, object]]:
    resp = client.get(path + "/versions")
    if resp.status_code == 404:
        return []
    assert resp.status_code == 200, resp.text
    items: list[dict[str, object]] = resp.json()["items"]
    return items


def git_commit(repo: Path, message: str = "change") -> str:
    return commit_all(repo, message)


def head(repo: Path) -> str:
    return git(repo, "rev-parse", "HEAD")


# A second config beside the seed's (my-tenant/app-a/production/app.json), its content from values.
APP_CONFIG = """\
apiVersion: gitops.conflux.io/v1alpha1
kind: ConfluxConfig
metadata: {name: app.json, namespace: my-tenant}
spec:
  application: app-a
  environment: production
  format: json
  values: {size: 3}
  template:
    content: |
      {"pool": {{ .Values.size }}}
"""
APP_JSON = "/api/v1/conflux/configs/my-tenant/app-a/production/app.json"
APP_ADDRESS = "my-tenant/app-a/production/app.json"


def status(source: dict[str, object]) -> dict[str, object]:
    value = source["status"]
    assert isinstance(value, dict)
    return value


def ready(source: dict[str, object]) -> dict[str, str]:
    condition: dict[str, str] = status(source)["conditions"][0]  # type: ignore[index]
    return condition


def documents(source: dict[str, object]) -> list[dict[str, object]]:
    docs: list[dict[str, object]] = status(source)["documents"]  # type: ignore[assignment]
    return docs


def results(source: dict[str, object]) -> dict[str, str]:
    docs = status(source)["documents"]
    assert isinstance(docs, list)
    return {d["path"]: d["result"] for d in docs}


def orphans(source: dict[str, object]) -> list[dict[str, object]]:
    items = status(source)["orphans"]
    assert isinstance(items, list)
    return items
