"""`xcf provider install [--dir DIR]`: put the Conflux Terraform provider where Terraform finds it offline.

Writes the unpacked filesystem-mirror layout and prints, on stdout, the `provider_installation`
block for the Terraform CLI configuration (so `xcf provider install > ~/.terraformrc` works); the
notes for people go to stderr. It needs no server and touches no database.
"""

from __future__ import annotations

from pathlib import Path

import typer

provider_app = typer.Typer(help="The Conflux Terraform provider (written in Python).", no_args_is_help=True)


@provider_app.command("install")
def install(
    directory: Path = typer.Option(
        None,
        "--dir",
        help="Filesystem mirror directory (default ~/.terraform.d/plugins).",
        file_okay=False,
        show_default=False,
    ),
) -> None:
    """Install terraform-provider-conflux into a filesystem mirror and print the CLI configuration."""
    from xcloudflow.provider import SOURCE
    from xcloudflow.provider.install import default_mirror, install, required_providers

    done = install(directory or default_mirror())
    typer.echo(f"installed {SOURCE} {done.version} ({done.platform}): {done.executable}", err=True)
    typer.echo(
        "Put the block printed on stdout in the Terraform CLI configuration file (TF_CLI_CONFIG_FILE or "
        "~/.terraformrc), and require the provider with\n" + required_providers(),
        err=True,
    )
    typer.echo(done.cli_config, nl=False)
