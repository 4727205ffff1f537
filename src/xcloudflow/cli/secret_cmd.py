"""`xcf secret ...`: the server's encrypted secret store, write-only from here.

`set NAME KEY=VALUE...` merges keys (a bare `KEY` prompts for its value without echo, so it stays out
of the shell history); `list` shows secret and key names, never values; `delete` drops a secret or one
key. Only HTTP: nothing here touches the database.
"""

from __future__ import annotations

import typer

from xcloudflow.cli.client import Client, fail
from xcloudflow.cli.output import Format, emit, out

secret_app = typer.Typer(help="Encrypted secrets for GitOps templates (write-only).", no_args_is_help=True)
OUTPUT = typer.Option(Format.table, "--output", "-o", help="table or json")


def _client(ctx: typer.Context) -> Client:
    return Client(ctx.obj["server"], ctx.obj["token"])


def parse_pairs(pairs: list[str]) -> dict[str, str]:
    """KEY=VALUE arguments; a bare KEY is prompted for (hidden input)."""
    data: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not key:
            fail(f"expected KEY=VALUE, got {pair.split('=')[0]!r}=...", 2)
        if not sep:
            # end of input aborts (exit 1); an empty line is refused: never an empty secret
            value = typer.prompt(f"value of {key}", hide_input=True, default="", show_default=False)
            if not value:
                fail(f"no value given for key {key}: nothing was set", 2)
        if key in data:
            fail(f"key {key} given twice", 2)
        data[key] = value
    return data


@secret_app.command("set")
def set_secret(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="Secret name (what a ConfluxConfig's secretsRef.name names)."),
    pairs: list[str] = typer.Argument(..., metavar="KEY=VALUE...", help="Keys to set; a bare KEY prompts."),
    output: Format = OUTPUT,
) -> None:
    """Set keys of a secret (created if missing; other keys keep their values)."""
    data = parse_pairs(pairs)
    resp = _client(ctx).request("PUT", f"/api/v1/secrets/{name}", json={"data": data})
    body = resp.json()
    if output is Format.json:
        emit(body, output)
        return
    verb = "created" if resp.status_code == 201 else "updated"
    out.print(f"secret {body['name']} {verb}: keys {', '.join(body['keys'])}", highlight=False)


@secret_app.command("list")
def list_secrets(ctx: typer.Context, output: Format = OUTPUT) -> None:
    """Secret names and key names (never values)."""
    items = _client(ctx).json("GET", "/api/v1/secrets")
    if output is Format.json:
        emit(items, output)
        return
    rows = [{**i, "keys": ", ".join(i["keys"])} for i in items]
    emit(rows, output, ["name", "keys", "updated_at", "updated_by"])


@secret_app.command("delete")
def delete_secret(
    ctx: typer.Context,
    name: str = typer.Argument(...),
    key: str = typer.Option(None, "--key", "-k", help="Delete only this key."),
    output: Format = OUTPUT,
) -> None:
    """Delete a secret, or one of its keys."""
    resp = _client(ctx).request("DELETE", f"/api/v1/secrets/{name}", params={"key": key} if key else None)
    if output is Format.json:
        emit(resp.json() if resp.content else {"name": name, "key": key, "deleted": True}, output)
        return
    out.print(f"deleted key {key} of secret {name}" if key else f"deleted secret {name}", highlight=False)
