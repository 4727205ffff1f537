"""`xcf state ...`, `xcf pulumi pull|push` and `xcf backend-config` (through the API)."""

from __future__ import annotations

import base64
import hashlib
import json
import shutil
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

import typer

from xcloudflow.cli.client import Client, fail
from xcloudflow.cli.output import Format, emit

state_app = typer.Typer(help="Terraform and Pulumi state: versions, locks, rollback.", no_args_is_help=True)
pulumi_app = typer.Typer(help="Move Pulumi stacks in and out with the pulumi CLI.", no_args_is_help=True)
OUTPUT = typer.Option(Format.table, "--output", "-o", help="table or json")
TOOL = typer.Option("terraform", "--tool", help="terraform or pulumi")
PROJECT = typer.Option(..., "--project", "-p")
STACK = typer.Option(..., "--stack", "-s")


def _client(ctx: typer.Context) -> Client:
    return Client(ctx.obj["server"], ctx.obj["token"])


def _api(tool: str, project: str, stack: str) -> str:
    return f"/api/v1/stacks/{tool}/{project}/{stack}"


def _backend(tool: str, project: str, stack: str) -> str:
    return f"/{tool}/state/{project}/{stack}"


@state_app.command("list")
def state_list(
    ctx: typer.Context,
    tool: str = typer.Option(None, "--tool"),
    project: str = typer.Option(None, "--project"),
    include_deleted: bool = typer.Option(False, "--include-deleted"),
    output: Format = OUTPUT,
) -> None:
    """List stacks."""
    client = _client(ctx)
    params: dict[str, str] = {k: v for k, v in {"tool": tool, "project": project}.items() if v}
    if include_deleted:
        params["include_deleted"] = "true"
    items: list[dict[str, object]] = []
    while True:
        page = client.json("GET", "/api/v1/stacks", params=params)
        items.extend(page["items"])
        if not page["next_cursor"]:
            break
        params["cursor"] = page["next_cursor"]
    for item in items:
        lock = item.get("lock")
        item["locked_by"] = lock["Who"] if isinstance(lock, dict) else None
        item["locked_for"] = _age(lock["age_seconds"]) if isinstance(lock, dict) else None
    emit(
        items,
        output,
        [
            "tool",
            "project",
            "stack",
            "head_version",
            "serial",
            "size",
            "updated_at",
            "locked_by",
            "locked_for",
        ],
    )


def _age(seconds: object) -> str:
    """1d2h, 3h4m, 5m6s, 7s: how long a lock has been held."""
    total = int(float(seconds)) if isinstance(seconds, int | float) else 0
    days, rest = divmod(total, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d{hours}h"
    if hours:
        return f"{hours}h{minutes}m"
    return f"{minutes}m{secs}s" if minutes else f"{secs}s"


@state_app.command("locks")
def state_locks(ctx: typer.Context, output: Format = OUTPUT) -> None:
    """List the held locks, oldest first, with their age and holder (a stale one is at the top)."""
    items = _client(ctx).json("GET", "/api/v1/stacks/locks")
    for item in items:
        item["age"] = _age(item["age_seconds"])
        item["address"] = f"{item['tool']}/{item['project']}/{item['stack']}"
    emit(items, output, ["address", "ID", "Who", "age"])


@state_app.command("show")
def state_show(
    ctx: typer.Context, project: str = PROJECT, stack: str = STACK, tool: str = TOOL, output: Format = OUTPUT
) -> None:
    """Show a stack: head version, serial, lineage, size, lock holder and age."""
    data = _client(ctx).json("GET", _api(tool, project, stack))
    if output is Format.json:
        emit(data, output)
        return
    lock = data.pop("lock")
    emit(data, output)
    if lock:
        typer.echo(
            f"locked by {lock['Who']} (ID {lock['ID']}, {lock['Operation']}) for {lock['age_seconds']:.0f}s"
        )


@state_app.command("versions")
def state_versions(
    ctx: typer.Context,
    project: str = PROJECT,
    stack: str = STACK,
    tool: str = TOOL,
    limit: int = typer.Option(50),
    output: Format = OUTPUT,
) -> None:
    """List versions, newest first."""
    page = _client(ctx).json("GET", _api(tool, project, stack) + "/versions", params={"limit": limit})
    emit(page["items"], output, ["version", "serial", "lineage", "size", "actor", "source", "created_at"])


def _download(client: Client, path: str, dest: Path | None) -> None:
    with client.http.stream("GET", path) as resp:
        if resp.status_code == 204:
            fail("the stack has no state yet")
        if resp.status_code != 200:
            resp.read()
            try:
                fail(f"{resp.status_code} {resp.json()['error']['message']}")
            except (ValueError, KeyError):
                fail(f"{resp.status_code} {resp.text[:300]}")
        sink = dest.open("wb") if dest else sys.stdout.buffer
        try:
            for chunk in resp.iter_bytes():
                sink.write(chunk)
        finally:
            if dest:
                sink.close()
            else:
                sink.flush()


@state_app.command("pull")
def state_pull(
    ctx: typer.Context,
    project: str = PROJECT,
    stack: str = STACK,
    tool: str = TOOL,
    version: int = typer.Option(None, help="A version (default: the head)."),
    out: Path = typer.Option(None, "--out", help="File to write (default: stdout)."),
) -> None:
    """Print (or save) a state's exact bytes."""
    client = _client(ctx)
    path = (
        _api(tool, project, stack) + f"/versions/{version}/content"
        if version
        else _backend(tool, project, stack)
    )
    _download(client, path, out)


state_app.command("export")(state_pull)


@state_app.command("push")
def state_push(
    ctx: typer.Context,
    file: Path = typer.Argument(..., exists=True, dir_okay=False),
    project: str = PROJECT,
    stack: str = STACK,
    tool: str = TOOL,
    lock_id: str | None = typer.Option(None, "--lock-id", help="The lock ID when you hold the lock."),
    output: Format = OUTPUT,
) -> None:
    """Store FILE as a new version (validated by the server)."""
    data = file.read_bytes()
    md5 = base64.b64encode(hashlib.md5(data).digest()).decode()  # noqa: S324 - protocol checksum
    params = {"ID": lock_id} if lock_id else {}
    method = "PUT" if tool == "pulumi" else "POST"
    _client(ctx).request(
        method,
        _backend(tool, project, stack),
        content=data,
        params=params,
        headers={"Content-MD5": md5, "Content-Type": "application/json"},
    )
    head = _client(ctx).json("GET", _api(tool, project, stack))
    if output is Format.json:
        emit(head, output)
        return
    typer.echo(f"stored {tool}/{project}/{stack} version {head['head_version']}")


@state_app.command("import")
def state_import(
    ctx: typer.Context,
    file: Path = typer.Argument(..., exists=True, dir_okay=False),
    project: str = PROJECT,
    stack: str = STACK,
    tool: str = TOOL,
    output: Format = OUTPUT,
) -> None:
    """Import a state file (Terraform state or `pulumi stack export` output)."""
    state_push(ctx, file, project, stack, tool, None, output)


@state_app.command("lock")
def state_lock(
    ctx: typer.Context,
    project: str = PROJECT,
    stack: str = STACK,
    tool: str = TOOL,
    reason: str = typer.Option("", help="Shown to whoever finds it locked."),
    output: Format = OUTPUT,
) -> None:
    """Take the lock (prints the lock ID to pass to unlock)."""
    import getpass
    import socket
    from datetime import UTC, datetime

    info = {
        "ID": str(uuid.uuid4()),
        "Operation": "xcf state lock",
        "Info": reason,
        "Who": f"{getpass.getuser()}@{socket.gethostname()}",
        "Version": "xcf",
        "Created": datetime.now(UTC).isoformat(),
        "Path": "",
    }
    _client(ctx).request("LOCK", _backend(tool, project, stack), json=info)
    if output is Format.json:
        emit(info, output)
        return
    typer.echo(info["ID"])


@state_app.command("unlock")
def state_unlock(
    ctx: typer.Context,
    lock_id: str | None = typer.Argument(
        None, metavar="LOCK_ID", help="The lock's ID (as `terraform force-unlock LOCK_ID`)."
    ),
    project: str = PROJECT,
    stack: str = STACK,
    tool: str = TOOL,
    lock_id_option: str | None = typer.Option(None, "--lock-id", help="Same as LOCK_ID.", hidden=True),
    force: bool = typer.Option(False, "--force", help="Break the lock whoever holds it (audited)."),
    output: Format = OUTPUT,
) -> None:
    """Release the lock LOCK_ID (`xcf state show` prints it), or break any lock with --force (audited)."""
    if lock_id and lock_id_option and lock_id != lock_id_option:
        fail("LOCK_ID and --lock-id differ: give one", 2)
    lock_id = lock_id or lock_id_option
    if not lock_id and not force:
        fail("give the LOCK_ID (`xcf state show` prints it), or --force to break the lock", 2)
    content = json.dumps({"ID": lock_id}) if lock_id else b""
    _client(ctx).request(
        "UNLOCK",
        _backend(tool, project, stack),
        content=content,
        headers={"Content-Type": "application/json"},
    )
    if output is Format.json:
        emit({"tool": tool, "project": project, "stack": stack, "unlocked": True, "ID": lock_id}, output)
        return
    typer.echo("unlocked")


@state_app.command("outputs")
def state_outputs(
    ctx: typer.Context,
    name: str | None = typer.Argument(None, metavar="NAME", help="Print only this output's value."),
    project: str = PROJECT,
    stack: str = STACK,
    tool: str = TOOL,
    raw: bool = typer.Option(False, "--raw", help="With NAME: a string printed as is (no quotes)."),
    output: Format = OUTPUT,
) -> None:
    """The head version's outputs, like `terraform output` (sensitive values: by NAME, for writers)."""
    data = _client(ctx).json("GET", _api(tool, project, stack) + "/outputs")
    outputs: dict[str, dict[str, object]] = data["outputs"]
    if name is not None:
        if name not in outputs:
            known = ", ".join(sorted(outputs)) or "none"
            fail(f"no output {name} in {tool}/{project}/{stack} version {data['version']} (outputs: {known})")
        value = outputs[name]["value"]
        if output is Format.json:
            emit(value, output)
        elif raw and isinstance(value, str):
            typer.echo(value)
        else:
            typer.echo(json.dumps(value))
        return
    if output is Format.json:
        emit(data, output)
        return
    if not outputs:
        typer.echo(f"{tool}/{project}/{stack} version {data['version']} has no outputs", err=True)
    for key, item in sorted(outputs.items()):
        # like `terraform output`: a sensitive value only when asked for by NAME
        typer.echo(f"{key} = " + ("<sensitive>" if item.get("sensitive") else json.dumps(item.get("value"))))


@state_app.command("rollback")
def state_rollback(
    ctx: typer.Context,
    version: int = typer.Argument(...),
    project: str = PROJECT,
    stack: str = STACK,
    tool: str = TOOL,
    output: Format = OUTPUT,
) -> None:
    """Write a new version with VERSION's content (serial and lineage fixed up for Terraform)."""
    new = _client(ctx).json("POST", _api(tool, project, stack) + "/rollback", json={"version": version})
    if output is Format.json:
        emit(new, output)
        return
    typer.echo(
        f"version {new['version']} now holds the content of version {version} (serial {new['serial']})"
    )


@state_app.command("diff")
def state_diff(
    ctx: typer.Context,
    from_version: int = typer.Argument(...),
    to_version: int = typer.Argument(...),
    project: str = PROJECT,
    stack: str = STACK,
    tool: str = TOOL,
    output: Format = OUTPUT,
) -> None:
    """Resources added, removed and changed between two versions."""
    data = _client(ctx).json(
        "GET", _api(tool, project, stack) + "/diff", params={"from": from_version, "to": to_version}
    )
    if output is Format.json:
        emit(data, output)
        return
    for mark, key in (("+", "added"), ("-", "removed"), ("~", "changed")):
        for addr in data[key]:
            typer.echo(f"{mark} {addr}")


@state_app.command("delete")
def state_delete(
    ctx: typer.Context, project: str = PROJECT, stack: str = STACK, tool: str = TOOL, output: Format = OUTPUT
) -> None:
    """Soft-delete a stack (restorable for XCF_STATE_RETENTION_DAYS)."""
    resp = _client(ctx).request("DELETE", _api(tool, project, stack))
    if output is Format.json:
        emit(resp.json() if resp.content else {}, output)
        return
    typer.echo(f"deleted {tool}/{project}/{stack}; `xcf state restore` brings it back")


@state_app.command("restore")
def state_restore(
    ctx: typer.Context, project: str = PROJECT, stack: str = STACK, tool: str = TOOL, output: Format = OUTPUT
) -> None:
    """Restore a soft-deleted stack."""
    resp = _client(ctx).request("POST", _api(tool, project, stack) + "/restore")
    if output is Format.json:
        emit(resp.json() if resp.content else {}, output)
        return
    typer.echo(f"restored {tool}/{project}/{stack}")


@state_app.command("purge-version")
def state_purge_version(
    ctx: typer.Context,
    version: int = typer.Argument(...),
    project: str = PROJECT,
    stack: str = STACK,
    tool: str = TOOL,
    output: Format = OUTPUT,
) -> None:
    """Erase one version's content for good (admins; e.g. a leaked secret)."""
    resp = _client(ctx).request("DELETE", _api(tool, project, stack) + f"/versions/{version}")
    if output is Format.json:
        emit(resp.json() if resp.content else {"version": version, "purged": True}, output)
        return
    typer.echo(f"purged version {version}")


def backend_config(
    ctx: typer.Context,
    project: str = PROJECT,
    stack: str = STACK,
    env: bool = typer.Option(
        False, "--env", help='Print the shell line instead: eval "$(xcf backend-config ... --env)".'
    ),
) -> None:
    """Print a `backend "http"` block (pure HCL: `> backend.tf`); the password line goes to stderr."""
    import os

    env_line = 'export TF_HTTP_PASSWORD="$XCF_TOKEN"'
    if env:
        typer.echo(env_line)
        return
    server = (ctx.obj.get("server") or os.environ.get("XCF_SERVER") or "http://127.0.0.1:8080").rstrip("/")
    address = f"{server}/terraform/state/{project}/{stack}"
    typer.echo(
        "terraform {\n"
        '  backend "http" {\n'
        f'    address        = "{address}"\n'
        f'    lock_address   = "{address}"\n'
        f'    unlock_address = "{address}"\n'
        '    lock_method    = "LOCK"\n'
        '    unlock_method  = "UNLOCK"\n'
        '    username       = "xcf"\n'
        "  }\n"
        "}"
    )
    typer.echo(f"# the password is your API token; keep it out of the configuration: {env_line}", err=True)


def _pulumi() -> str:
    exe = shutil.which("pulumi")
    if exe is None:
        fail(
            "the pulumi CLI is not on PATH: install Pulumi, or move documents with "
            "`pulumi stack export --file F` + `xcf state import --tool pulumi F` by hand"
        )
    return exe


@pulumi_app.command("pull")
def pulumi_pull(
    ctx: typer.Context,
    project: str = PROJECT,
    stack: str = STACK,
    pulumi_stack: str = typer.Option(..., "--pulumi-stack", help="The local Pulumi stack name."),
) -> None:
    """Import the stored document into a local Pulumi stack (`pulumi stack import`)."""
    exe = _pulumi()
    with tempfile.TemporaryDirectory() as tmp:
        dest = Path(tmp) / "stack.json"
        _download(_client(ctx), _backend("pulumi", project, stack), dest)
        subprocess.run([exe, "stack", "import", "--stack", pulumi_stack, "--file", str(dest)], check=True)
    typer.echo(f"imported pulumi/{project}/{stack} into Pulumi stack {pulumi_stack}")


@pulumi_app.command("push")
def pulumi_push(
    ctx: typer.Context,
    project: str = PROJECT,
    stack: str = STACK,
    pulumi_stack: str = typer.Option(..., "--pulumi-stack"),
) -> None:
    """Export a local Pulumi stack (`pulumi stack export`) and store it as a new version."""
    exe = _pulumi()
    with tempfile.TemporaryDirectory() as tmp:
        dest = Path(tmp) / "stack.json"
        subprocess.run([exe, "stack", "export", "--stack", pulumi_stack, "--file", str(dest)], check=True)
        state_push(ctx, dest, project, stack, "pulumi", None, Format.table)
