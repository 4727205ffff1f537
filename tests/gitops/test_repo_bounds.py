"""A sync reads its commit through compose.repo.checkout, so the same streamed, bounded read applies,
under GitOps' own setting (XCF_GITOPS_REPO_MAX_BYTES)."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from tests.gitops.conftest import add_source, git_commit, sync, versions
from tests.rss import MiB
from xcloudflow.settings import Settings


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"gitops_repo_max_bytes": 1 * MiB})


def test_a_sync_of_a_too_large_commit_fails_and_stores_nothing(admin: TestClient, repo: Path) -> None:
    with (repo / "blob.bin").open("wb") as handle:
        handle.truncate(64 * MiB)  # 64 MB of zeros: 64 KB in git
    git_commit(repo, "a large file")
    add_source(admin, repo)
    source = sync(admin)
    condition = source["status"]["conditions"][0]  # type: ignore[index]
    assert condition["status"] == "False" and condition["reason"] == "FetchFailed"
    assert "XCF_GITOPS_REPO_MAX_BYTES" in condition["message"]
    assert f"more than {1 * MiB} bytes" in condition["message"]
    assert versions(admin) == []
