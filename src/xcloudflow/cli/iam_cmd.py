"""`xcf token ...` and `xcf user ...` (through the API)."""

from __future__ import annotations

import typer

from xcloudflow.cli.client import Client
from xcloudflow.cli.output import Format, emit

token_app = typer.Typer(help="API tokens.", no_args_is_help=True)
user_app = typer.Typer(help="Users and their roles.", no_args_is_help=True)
OUTPUT = typer.Option(Format.table, "--output", "-o", help="table or json")


def _client(ctx: typer.Context) -> Client:
    return Client(ctx.obj["server"], ctx.obj["token"])


@token_app.command("create")
def token_create(
    ctx: typer.Context,
    name: str = typer.Option(..., help="A name that says what the token is for."),
    user: str = typer.Option(None, help="Owner (admins only; default: you)."),
    expires_at: str = typer.Option(None, help="Expiry, ISO 8601 with zone, e.g. 2027-01-01T00:00:00Z."),
    output: Format = OUTPUT,
) -> None:
    """Create a token; the secret is printed once."""
    body = {"name": name, "user": user, "expires_at": expires_at}
    created = _client(ctx).json(
        "POST", "/api/v1/tokens", json={k: v for k, v in body.items() if v is not None}
    )
    if output is Format.json:
        emit(created, output)
    else:
        typer.echo(f"token {created['id']} ({created['name']}) for {created['user']}:\n{created['token']}")
        typer.echo("It is shown only now.", err=True)


@token_app.command("list")
def token_list(ctx: typer.Context, output: Format = OUTPUT) -> None:
    """List tokens (admins see everyone's)."""
    emit(
        _client(ctx).json("GET", "/api/v1/tokens"),
        output,
        ["id", "name", "user", "prefix", "created_at", "expires_at", "revoked_at"],
    )


@token_app.command("revoke")
def token_revoke(ctx: typer.Context, token_id: int = typer.Argument(...), output: Format = OUTPUT) -> None:
    """Revoke a token by id."""
    revoked = _client(ctx).json("DELETE", f"/api/v1/tokens/{token_id}")
    if output is Format.json:
        emit(revoked, output)
        return
    typer.echo(f"token {revoked['id']} revoked at {revoked['revoked_at']}")


@user_app.command("create")
def user_create(
    ctx: typer.Context,
    name: str = typer.Argument(...),
    role: str = typer.Option("reader", help="admin, writer or reader"),
    output: Format = OUTPUT,
) -> None:
    """Create a user in your organization with a role."""
    emit(_client(ctx).json("POST", "/api/v1/users", json={"name": name, "role": role}), output)


@user_app.command("list")
def user_list(ctx: typer.Context, output: Format = OUTPUT) -> None:
    """List the users of your organization."""
    users = _client(ctx).json("GET", "/api/v1/users")
    if output is Format.table:
        for user in users:
            user["grants"] = ", ".join(user.get("grants") or [])
    emit(users, output, ["name", "role", "grants", "created_at", "disabled"])


@user_app.command("grant")
def user_grant(
    ctx: typer.Context,
    name: str = typer.Argument(...),
    permissions: list[str] = typer.Argument(None, help="e.g. state:read; none removes every grant"),
    output: Format = OUTPUT,
) -> None:
    """Set the permissions a user has beyond their role (admins): `xcf user grant ci-bot state:read`
    lets a reader read raw state; `xcf user grant ci-bot` removes the grants."""
    emit(
        _client(ctx).json("PUT", f"/api/v1/users/{name}/grants", json={"grants": permissions or []}),
        output,
        ["name", "role", "grants"],
    )


def whoami(ctx: typer.Context, output: Format = OUTPUT) -> None:
    """Who the token is: user, organization, role and token id (checks the server and the token)."""
    client = _client(ctx)
    me = client.json("GET", "/api/v1/whoami")
    if output is Format.json:
        emit({**me, "server": client.server}, output)
        return
    typer.echo(
        f"{me['user']} ({me['role']}) in organization {me['organization']}, token {me['token_id']}, "
        f"on {client.server}"
    )
