"""`xcf secret ...` and `xcf gitops ...` against a real server over HTTP, with a real repository."""

from __future__ import annotations

from pathlib import Path

from click.testing import Result
from typer.testing import CliRunner

from tests.conftest import ADMIN_TOKEN
from tests.gitops.conftest import SECRET
from xcloudflow.cli.main import app

runner = CliRunner()


def xcf(server: str, *args: str, input: str | None = None) -> Result:
    return runner.invoke(app, ["--server", server, "--token", ADMIN_TOKEN, *args], input=input)


def said(result: Result) -> str:
    return " ".join(result.output.split())


def test_secrets_and_a_source_from_the_command_line(live_server: str, repo: Path, tmp_path: Path) -> None:
    result = xcf(live_server, "secret", "set", "db-credentials", f"database_password={SECRET}", "user")
    assert result.exit_code == 1 and "Aborted" in result.output  # a bare KEY prompts; no input
    result = xcf(live_server, "secret", "set", "db-credentials", "database_password", input=SECRET + "\n")
    assert result.exit_code == 0, result.output
    assert "secret db-credentials created: keys database_password" in said(result)
    listed = xcf(live_server, "secret", "list")
    assert "db-credentials" in listed.output and SECRET not in listed.output

    source_yaml = tmp_path / "source.yaml"
    source_yaml.write_text(
        "apiVersion: gitops.conflux.io/v1alpha1\nkind: ConfluxSource\nmetadata:\n  name: app-a-config-repo\n"
        f"spec:\n  interval: 1m\n  url: {repo}\n  ref:\n    branch: main\n"
    )
    added = xcf(live_server, "gitops", "source", "add", "-f", str(source_yaml))
    assert added.exit_code == 0, added.output
    assert "webhook secret (shown once):" in added.output

    preview = xcf(live_server, "gitops", "diff", "app-a-config-repo")
    assert preview.exit_code == 0, preview.output
    assert "### GitOps preview: source `app-a-config-repo`" in preview.output
    assert 'password = "******"' in preview.output and SECRET not in preview.output

    synced = xcf(live_server, "gitops", "source", "sync", "app-a-config-repo")
    assert synced.exit_code == 0, synced.output
    status = xcf(live_server, "gitops", "status", "app-a-config-repo")
    assert status.exit_code == 0, status.output
    text = status.output
    for expected in (
        "Name:         app-a-config-repo",
        "Conditions:",
        "Ready  True",
        "Documents:",
        "Events:",
    ):
        assert expected in text, text
    assert "production/database.yaml:1" in text and "published" in text
    assert SECRET not in text
    listing = xcf(live_server, "gitops", "source", "list", "-o", "json")
    assert '"name": "app-a-config-repo"' in listing.output and SECRET not in listing.output

    xcf(live_server, "secret", "delete", "db-credentials")
    failing = xcf(live_server, "gitops", "sync", "app-a-config-repo")
    assert failing.exit_code == 1
    assert "DocumentsFailed" in failing.output and "does not exist" in said(failing)
    assert xcf(live_server, "gitops", "source", "delete", "app-a-config-repo").exit_code == 0
