"""`xcf gitops source add --prune`, orphans in `xcf gitops status`, and a refused URL, against a real
server over HTTP with a real repository."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.gitops.conftest import APP_CONFIG, SECRET, commit_all
from tests.gitops.test_cli import said, xcf


def has_row(text: str, *cells: str) -> bool:
    return any(line.split()[: len(cells)] == list(cells) for line in text.splitlines())


@pytest.mark.parametrize("prune", [False, True])
def test_prune_and_orphans_from_the_command_line(live_server: str, repo: Path, prune: bool) -> None:
    assert xcf(live_server, "secret", "set", "db-credentials", f"database_password={SECRET}").exit_code == 0
    (repo / "production" / "app.yaml").write_text(APP_CONFIG)
    commit_all(repo)
    flags = ["--prune"] if prune else []
    added = xcf(live_server, "gitops", "source", "add", "app-a", "--url", str(repo), *flags)
    assert added.exit_code == 0, added.output
    assert xcf(live_server, "gitops", "sync", "app-a").exit_code == 0
    (repo / "production" / "app.yaml").unlink()
    commit_all(repo, "drop app.json")

    synced = xcf(live_server, "gitops", "sync", "app-a")
    assert synced.exit_code == 0, synced.output
    text = synced.output
    assert f"Prune:        {str(prune).lower()}" in text
    if prune:
        assert "Sync Status:          Synced" in text
        assert has_row(text, "production/app.yaml", "my-tenant/app-a/production/app.json", "pruned", "1")
        assert "Orphans" not in text
        assert xcf(live_server, "conflux", "get", "my-tenant/app-a/production/app.json").exit_code != 0
    else:
        assert "Sync Status:          OutOfSync" in text
        assert "Orphans (removed from Git, require pruning):" in text
        assert has_row(text, "my-tenant/app-a/production/app.json", "production/app.yaml", "1", "config")


def test_a_refused_url_from_the_command_line(live_server: str) -> None:
    bad = xcf(live_server, "gitops", "source", "add", "x", "--url", "http://user:tok3n-Zx@example.com/r.git")
    assert bad.exit_code != 0
    assert "url: http:// is not encrypted: use https:// or ssh://" in said(bad)
    assert "tok3n-Zx" not in bad.output and "Traceback" not in bad.output
