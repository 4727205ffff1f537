"""Reading a repository at one commit with the real git CLI, and packing a snapshot."""

from __future__ import annotations

import io
import os
import shutil
import tarfile
from pathlib import Path
from typing import Any

import pytest

from xcloudflow.compose.loader import load_repository
from xcloudflow.compose.repo import archive, checkout, is_url, mask, working_tree
from xcloudflow.errors import Invalid

from .conftest import commit_all, git, init_repo


def read(source: str, ref: str | None, **options: Any) -> None:
    """Check out and let go (for the errors)."""
    with checkout(source, ref, **options):
        pass


def test_checkout_reads_exactly_the_commit_not_the_working_tree(example_git: Path, tmp_path: Path) -> None:
    head = git(example_git, "rev-parse", "HEAD")
    (example_git / "compositions/apps/web.yaml").write_text("not: [valid\n")  # uncommitted
    with checkout(str(example_git), None, local_roots=[tmp_path]) as snapshot:
        assert snapshot.commit == head and snapshot.ref is None and snapshot.source == str(example_git)
        assert not (snapshot.root / ".git").exists()
        assert (snapshot.root / ".xcf.yaml").is_file()
        repo = load_repository(snapshot.root)
        assert len(repo.compositions) == 5
        root = snapshot.root
    assert not root.exists()  # removed on exit
    with pytest.raises(Exception, match="invalid YAML"):
        load_repository(working_tree(example_git).root)


def test_branches_tags_and_shas(example_git: Path, tmp_path: Path) -> None:
    first = git(example_git, "rev-parse", "HEAD")
    git(example_git, "tag", "v1")
    git(example_git, "checkout", "-q", "-b", "feature")
    (example_git / "compositions/apps/web.yaml").unlink()
    second = commit_all(example_git, "drop web")
    git(example_git, "checkout", "-q", "main")
    roots = [tmp_path]
    for ref, sha, count in (
        ("main", first, 5),
        ("v1", first, 5),
        ("feature", second, 4),
        (second, second, 4),
    ):
        with checkout(str(example_git), ref, local_roots=roots) as snapshot:
            assert snapshot.commit == sha and snapshot.ref == ref
            assert len(list((snapshot.root / "compositions").rglob("*.yaml"))) == count
    with pytest.raises(Invalid, match=r"unknown ref 'nope' \(no such branch, tag or commit\)") as caught:
        read(str(example_git), "nope", local_roots=roots)
    assert str(example_git) in caught.value.message
    with pytest.raises(Invalid, match="invalid ref"):
        read(str(example_git), "--upload-pack=evil", local_roots=roots)


def test_a_subdirectory_of_a_work_tree_is_the_repository_root(example: Path, tmp_path: Path) -> None:
    mono = tmp_path / "mono"
    (mono / "infra").mkdir(parents=True)
    shutil.copytree(example, mono / "infra/platform")
    (mono / "README.md").write_text("monorepo\n")
    sha = init_repo(mono)
    with checkout(str(mono / "infra/platform"), None, local_roots=[tmp_path]) as snapshot:
        assert snapshot.commit == sha
        assert (snapshot.root / ".xcf.yaml").is_file() and not (snapshot.root / "README.md").exists()
        assert sorted(load_repository(snapshot.root).environments) == ["dev", "prod"]


def test_bare_repository_and_file_url(example_git: Path, tmp_path: Path) -> None:
    git(example_git, "tag", "release-1")
    sha = git(example_git, "rev-parse", "HEAD")
    bare = tmp_path / "bare.git"
    git(tmp_path, "clone", "-q", "--bare", str(example_git), str(bare))
    with checkout(str(bare), "main", local_roots=[tmp_path]) as snapshot:
        assert snapshot.commit == sha and (snapshot.root / ".xcf.yaml").is_file()
    for ref in (None, "main", "release-1", sha):
        with checkout(f"file://{bare}", ref, local_roots=[tmp_path]) as snapshot:
            assert snapshot.commit == sha, ref
            assert len(load_repository(snapshot.root).compositions) == 5


def test_local_paths_are_refused_outside_the_allowed_roots(example_git: Path, tmp_path: Path) -> None:
    elsewhere = tmp_path / "allowed"
    elsewhere.mkdir()
    for source in (str(example_git), f"file://{example_git}"):
        with pytest.raises(Invalid, match="XCF_COMPOSE_LOCAL_ROOTS") as caught:
            read(source, None, local_roots=[elsewhere])
        assert "local paths are refused" in caught.value.message
    with pytest.raises(Invalid, match="absolute path or a git URL"):
        read("relative/path", None, local_roots=[tmp_path])
    # a symlink inside an allowed root that points outside it is outside
    (elsewhere / "link").symlink_to(example_git)
    with pytest.raises(Invalid, match="refused"):
        read(str(elsewhere / "link"), None, local_roots=[elsewhere])


def test_not_a_repository_and_missing_directory(tmp_path: Path) -> None:
    plain = tmp_path / "plain"
    plain.mkdir()
    with pytest.raises(Invalid, match="not a git repository"):
        read(str(plain), None, local_roots=[tmp_path])
    with pytest.raises(Invalid, match="no such directory"):
        read(str(tmp_path / "missing"), None, local_roots=[tmp_path])
    empty = tmp_path / "empty"
    empty.mkdir()
    git(empty, "init", "-q")
    with pytest.raises(Invalid, match="has no commit yet"):
        read(str(empty), None, local_roots=[tmp_path])


def test_unreachable_git_url_names_the_source_and_masks_credentials(tmp_path: Path) -> None:
    url = "http://deploy:s3cret-token@127.0.0.1:9/platform.git"
    with pytest.raises(Invalid) as caught:
        read(url, "main", local_roots=[], timeout=30)
    message = caught.value.message
    assert message.startswith("cannot fetch repository http://***@127.0.0.1:9/platform.git: ")
    assert "s3cret" not in message and "s3cret" not in str(caught.value.details)
    assert "unable to access" in message or "Failed to connect" in message, message
    with pytest.raises(
        Invalid, match=r"cannot fetch repository ssh://git@127\.0\.0\.1:9/x\.git: .*Connection refused"
    ):
        read("ssh://git@127.0.0.1:9/x.git", None, local_roots=[], timeout=30)


def test_url_helpers() -> None:
    assert is_url("https://github.com/o/r.git") and is_url("git@github.com:o/r.git") and is_url("file:///x")
    assert not is_url("/srv/repo") and not is_url("C:/x")
    assert mask("fatal: https://u:p@h/x and ssh://t:p@h/y") == "fatal: https://***@h/x and ssh://***@h/y"
    assert mask("https://ghp_token@h/x ssh://git@h/y") == "https://***@h/x ssh://git@h/y"


def _members(data: bytes) -> dict[str, tarfile.TarInfo]:
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        return {m.name: m for m in tar.getmembers()}


def test_archive_is_deterministic_and_leaves_out_git(example_git: Path) -> None:
    (example_git / "modules/network/inner-link").symlink_to("main.tf")
    os.chmod(example_git / "playbooks/app-config.yml", 0o755)
    data = archive(example_git, max_bytes=1 << 20)
    members = _members(data)
    assert ".xcf.yaml" in members and "modules/network/main.tf" in members
    assert not any(name == ".git" or name.startswith(".git/") for name in members)
    assert (
        members["modules/network/inner-link"].issym()
        and members["modules/network/inner-link"].linkname == "main.tf"
    )
    assert members["playbooks/app-config.yml"].mode == 0o755
    assert {m.mtime for m in members.values()} == {0}
    assert archive(example_git, max_bytes=1 << 20) == data


def test_archive_refuses_links_leaving_the_repository_and_big_snapshots(
    example: Path, tmp_path: Path
) -> None:
    with pytest.raises(Invalid, match="larger than 100 bytes"):
        archive(example, max_bytes=100)
    (example / "modules/escape").symlink_to("../../..")
    with pytest.raises(Invalid, match=r"modules/escape: symbolic link to '../../..' leaves the repository"):
        archive(example, max_bytes=1 << 20)
    (example / "modules/escape").unlink()
    (example / "secret").symlink_to("/etc/passwd")
    with pytest.raises(Invalid, match="leaves the repository"):
        archive(example, max_bytes=1 << 20)


def test_working_tree_of_a_missing_directory(tmp_path: Path) -> None:
    with pytest.raises(Invalid, match="not a directory"):
        working_tree(tmp_path / "nope")
