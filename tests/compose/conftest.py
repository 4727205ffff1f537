"""Fixtures of the compose tests: the example repository copied into tmp_path, git repositories
made there with the real git CLI, and a small writer for YAML documents."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.gitrepo import EXAMPLE, GIT_ENV, commit_all, git, init_repo

__all__ = ["EXAMPLE", "GIT_ENV", "commit_all", "git", "init_repo"]


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
