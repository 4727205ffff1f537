"""`xcf`: the XCloudFlow command line. Heavy modules are imported inside commands so --help is fast."""

from __future__ import annotations

import typer

from xcloudflow.cli import (
    admin_cmd,
    agent_cmd,
    compose_cmd,
    conflux_cmd,
    gitops_cmd,
    iam_cmd,
    inventory_admin,
    inventory_cmd,
    provider_cmd,
    run_cmd,
    secret_cmd,
    state_cmd,
    terraform_cmd,
    workspace_cmd,
)

app = typer.Typer(
    name="xcf",
    help="XCloudFlow: self-hosted infrastructure control plane.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        from xcloudflow import __version__

        typer.echo(f"xcf {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    ctx: typer.Context,
    server: str = typer.Option(None, envvar="XCF_SERVER", help="Server URL (default http://127.0.0.1:8080)."),
    token: str = typer.Option(None, envvar="XCF_TOKEN", help="API token.", show_default=False),
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    ctx.obj = {"server": server, "token": token}


admin_cmd.register(app)
app.add_typer(iam_cmd.token_app, name="token")
app.add_typer(iam_cmd.user_app, name="user")
app.command("whoami")(iam_cmd.whoami)
app.add_typer(state_cmd.state_app, name="state")
app.add_typer(state_cmd.pulumi_app, name="pulumi")
app.command("backend-config")(state_cmd.backend_config)
inventory_admin.register(inventory_cmd.inventory_app)
app.add_typer(inventory_cmd.inventory_app, name="inventory")
app.add_typer(inventory_cmd.graph_app, name="graph")
agent_cmd.register(app)
app.add_typer(workspace_cmd.workspace_app, name="workspace")
app.add_typer(run_cmd.run_app, name="run")
app.add_typer(compose_cmd.compose_app, name="compose")
app.add_typer(conflux_cmd.conflux_app, name="conflux")
app.add_typer(gitops_cmd.gitops_app, name="gitops")
app.add_typer(secret_cmd.secret_app, name="secret")
app.add_typer(provider_cmd.provider_app, name="provider")
terraform_cmd.register(app)


def main() -> None:
    app()
