"""Reading one commit is bounded: `git archive` is streamed in chunks into the checkout and stopped
once the commit unpacks to more than the limit, so a small repository of a very compressible large
file (64 MB of zeros is 64 KB in git) costs neither memory nor unbounded disk."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from tests.e2e.compose_helpers import make_repo
from tests.gitrepo import commit_all, init_repo
from tests.rss import MiB, peak_rss_growth
from xcloudflow.compose.repo import RepoLimits, checkout
from xcloudflow.errors import Invalid
from xcloudflow.settings import Settings

BIG = 64 * MiB


def _zeros(path: Path, size: int = BIG) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as handle:
        handle.truncate(size)  # sparse: no disk spent on the test's own copy


@pytest.fixture
def zeros_repo(tmp_path: Path) -> Path:
    repo = tmp_path / "repos" / "zeros"
    repo.mkdir(parents=True)
    (repo / "README.md").write_text("small\n")
    _zeros(repo / "blob.bin")
    init_repo(repo)
    return repo


def test_a_commit_larger_than_the_limit_is_refused_while_streaming(zeros_repo: Path, tmp_path: Path) -> None:
    limits = RepoLimits(max_bytes=1 * MiB, setting="XCF_COMPOSE_REPO_MAX_BYTES")
    with (
        peak_rss_growth() as growth,
        pytest.raises(Invalid) as err,
        checkout(str(zeros_repo), None, local_roots=[tmp_path], limits=limits),
    ):
        pytest.fail("the checkout must not be handed out")
    message = err.value.message
    assert f"more than {1 * MiB} bytes" in message and "XCF_COMPOSE_REPO_MAX_BYTES" in message
    assert str(tmp_path) not in message.replace(str(zeros_repo), "")  # the repository, nothing of ours
    assert err.value.details["rule"] == "max_unpacked_bytes"
    assert growth.mib < 32  # reading it whole cost 64 MB and more


def test_a_commit_under_the_limit_is_streamed_to_disk_not_memory(zeros_repo: Path, tmp_path: Path) -> None:
    with (
        peak_rss_growth() as growth,
        checkout(str(zeros_repo), None, local_roots=[tmp_path], limits=RepoLimits(max_bytes=2 * BIG)) as snap,
    ):
        assert (snap.root / "blob.bin").stat().st_size == BIG
        assert (snap.root / "README.md").read_text() == "small\n"
    assert growth.mib < 32
    assert not snap.root.exists()  # removed on exit


def test_an_empty_commit_is_an_empty_snapshot(tmp_path: Path) -> None:
    repo = tmp_path / "empty"
    repo.mkdir()
    (repo / "x").write_text("x")
    init_repo(repo)
    (repo / "x").unlink()
    commit_all(repo, "remove everything")
    with checkout(str(repo), None, local_roots=[tmp_path]) as snap:
        assert list(snap.root.iterdir()) == []


class TestTheServerSetting:
    @pytest.fixture
    def settings(self, settings: Settings, tmp_path: Path) -> Settings:
        return settings.model_copy(
            update={"compose_local_roots": str(tmp_path), "compose_repo_max_bytes": 1 * MiB}
        )

    def test_planning_from_a_too_large_commit_is_a_400_and_stores_nothing(
        self, admin: TestClient, tmp_path: Path
    ) -> None:
        repo = make_repo(tmp_path, env="qa")
        _zeros(repo / "assets" / "blob.bin")
        commit_all(repo, "a large file")
        resp = admin.post("/api/v1/compose/changesets", json={"repo": str(repo), "environment": "qa"})
        assert resp.status_code == 400, resp.text
        message = resp.json()["error"]["message"]
        assert "XCF_COMPOSE_REPO_MAX_BYTES" in message and f"more than {1 * MiB} bytes" in message
        assert admin.get("/api/v1/compose/changesets").json()["items"] == []
        assert admin.get("/api/v1/jobs").json()["items"] == []


def test_a_link_out_of_the_repository_is_refused_without_the_servers_path(tmp_path: Path) -> None:
    repo = tmp_path / "repos" / "links"
    repo.mkdir(parents=True)
    (repo / "README.md").write_text("x\n")
    (repo / "escape").symlink_to("../../../../../../etc/passwd")
    init_repo(repo)
    with pytest.raises(Invalid) as err, checkout(str(repo), None, local_roots=[tmp_path]):
        pytest.fail("the checkout must not be handed out")
    message = err.value.message
    assert "file 'escape' cannot be extracted safely" in message
    assert "xcf-compose-" not in message and "outside the destination" not in message
