"""Fixtures of the compose tests: the example repository copied into tmp_path, git repositories
made there with the real git CLI, and a small writer for YAML documents."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "platform"
GIT_ENV = {
    "GIT_AUTHOR_NAME": "Test",
    "GIT_AUTHOR_EMAIL": "test@example.com",
    "GIT_COMMITTER_NAME": "Test",
    "GIT_COMMITTER_EMAIL": "test@example.com",
    "GIT_CONFIG_NOSYSTEM": "1",
    "HOME": "/nonexistent",
    "PATH": "/usr/local/bin:/usr/bin:/bin",
}


def git(cwd: Path, *args: str) -> str:
    done = subprocess.run(["git", *args], cwd=cwd, env=GIT_ENV, capture_output=True, text=True, check=False)
    assert done.returncode == 0, f"git {' '.join(args)}: {done.stderr}"
    return done.stdout.strip()


def commit_all(repo: Path, message: str = "change") -> str:
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", message)
    return git(repo, "rev-parse", "HEAD")


def init_repo(path: Path) -> str:
    """`git init` + one commit of what `path` holds; returns the commit sha."""
    git(path, "init", "-q", "-b", "main")
    return commit_all(path, "initial")


@pytest.fixture
def example(tmp_path: Path) -> Path:
    """A copy of examples/platform (not a git repository)."""
    target = tmp_path / "platform"
    shutil.copytree(EXAMPLE, target)
    return target


@pytest.fixture
def example_git(example: Path) -> Path:
    """A copy of examples/platform committed to a fresh git repository on branch main."""
    init_repo(example)
    return example


Write = Callable[[str, str], Path]


@pytest.fixture
def write(example: Path) -> Write:
    """write("compositions/x.yaml", text) into the example copy (dedented)."""
    import textwrap

    def _write(rel: str, text: str) -> Path:
        path = example / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip("\n"))
        return path

    return _write
