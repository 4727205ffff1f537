"""`xcf workspace ...`: workspaces, their code versions and their variables (through the API).

`upload` packs a directory into a .tar.gz in memory the way the server will accept it: regular files
and directories only (a symlink is stored as the file or directory it points to, and refused when it
points outside the directory), no `.terraform/`, `.git/` or state files, and reproducible bytes
(sorted, no timestamps or owners) so the same directory always gives the same checksum. This module
only talks HTTP: it never imports the server, the database or a domain's service.
"""

from __future__ import annotations

import fnmatch
import gzip
import io
import os
import sys
import tarfile
from pathlib import Path
from typing import Any
from urllib.parse import quote

import typer
from typer.core import TyperGroup

from xcloudflow.cli.client import Client, err, fail
from xcloudflow.cli.output import Format, emit

workspace_app = typer.Typer(
    help="Workspaces: a Terraform configuration, its variables and its runs.", no_args_is_help=True
)
OUTPUT = typer.Option(Format.table, "--output", "-o", help="table or json")
WORKSPACE_COLUMNS = [
    "project",
    "name",
    "source",
    "current_code_version",
    "agent_pool",
    "auto_apply",
    "locked",
    "tags",
    "updated_at",
]
SKIPPED_DIRS = (".terraform", ".git")
SKIPPED_NAMES = ("*.tfstate*",)  # terraform.tfstate, its .backup, terraform.tfstate.d/, lock info


def _client(ctx: typer.Context) -> Client:
    return Client(ctx.obj["server"], ctx.obj["token"])


def split_address(address: str) -> tuple[str, str]:
    """`project/name` -> (project, name); a usage error (exit 2) for anything else."""
    project, sep, name = address.partition("/")
    if not sep or not project or not name or "/" in name:
        raise typer.BadParameter(f"{address!r} is not a workspace address: write it as PROJECT/NAME")
    return project, name


def _check_address(address: str) -> str:
    split_address(address)
    return address


ADDRESS = typer.Argument(
    ..., metavar="PROJECT/NAME", help="The workspace, as project/name.", callback=_check_address
)


def workspace_path(address: str) -> str:
    project, name = split_address(address)
    return f"/api/v1/workspaces/{quote(project, safe='')}/{quote(name, safe='')}"


def emit_record(data: dict[str, Any], fmt: Format) -> None:
    """One object: JSON as is, or a two-column field/value table."""
    if fmt is Format.json:
        emit(data, fmt)
        return
    rows = [
        {"field": key, "value": ", ".join(map(str, value)) if isinstance(value, list) else value}
        for key, value in data.items()
    ]
    emit(rows, fmt, ["field", "value"])


# ---------------------------------------------------------------- packing a directory


class PackError(ValueError):
    """The directory cannot be uploaded as it is (the message says which path and why)."""


def _skipped(name: str, is_dir: bool) -> bool:
    if is_dir and name in SKIPPED_DIRS:
        return True
    return any(fnmatch.fnmatch(name, pattern) for pattern in SKIPPED_NAMES)


def pack_directory(root: Path) -> tuple[bytes, list[str], list[str]]:
    """The .tar.gz of `root` (reproducible), the files packed and the paths skipped.

    Raises PackError for a symlink that leads outside `root`, a dangling symlink or a symlink loop.
    """
    if not root.is_dir():
        raise PackError(f"{root} is not a directory")
    top = root.resolve()
    packed: list[str] = []
    skipped: list[str] = []
    buf = io.BytesIO()

    def info(name: str, kind: bytes, mode: int, size: int = 0) -> tarfile.TarInfo:
        entry = tarfile.TarInfo(name)
        entry.type, entry.mode, entry.size = kind, mode, size
        entry.mtime, entry.uid, entry.gid, entry.uname, entry.gname = 0, 0, 0, "", ""
        return entry

    def walk(tar: tarfile.TarFile, directory: Path, rel: str, chain: frozenset[Path]) -> None:
        for entry in sorted(os.scandir(directory), key=lambda e: e.name):
            path = Path(entry.path)
            relpath = f"{rel}/{entry.name}" if rel else entry.name
            target = path
            if entry.is_symlink():
                link = os.readlink(path)
                try:
                    target = path.resolve(strict=True)
                except FileNotFoundError:
                    raise PackError(f"{relpath} is a symlink to {link!r}, which does not exist") from None
                except RuntimeError:
                    raise PackError(f"{relpath} is a symlink loop") from None
                if not target.is_relative_to(top):
                    raise PackError(
                        f"{relpath} is a symlink to {link!r}, outside {root}: refusing to upload it "
                        "(copy the file into the directory instead)"
                    )
            is_dir = target.is_dir()
            if _skipped(entry.name, is_dir):
                skipped.append(relpath + ("/" if is_dir else ""))
                continue
            if is_dir:
                real = target.resolve()
                if real in chain:
                    raise PackError(f"{relpath} is a symlink to one of its own parent directories")
                tar.addfile(info(relpath, tarfile.DIRTYPE, 0o755))
                walk(tar, real, relpath, chain | {real})
            elif target.is_file():
                body = target.read_bytes()
                mode = 0o755 if os.access(target, os.X_OK) else 0o644
                tar.addfile(info(relpath, tarfile.REGTYPE, mode, len(body)), io.BytesIO(body))
                packed.append(relpath)
            else:
                skipped.append(relpath + " (not a regular file)")

    with (
        gzip.GzipFile(fileobj=buf, mode="wb", mtime=0) as gz,
        tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as tar,
    ):
        walk(tar, top, "", frozenset({top}))
    return buf.getvalue(), packed, skipped


# ---------------------------------------------------------------- workspaces


@workspace_app.command("create")
def workspace_create(
    ctx: typer.Context,
    address: str = ADDRESS,
    pool: str = typer.Option("embedded", "--pool", help="The agent pool that runs it."),
    auto_apply: bool = typer.Option(False, "--auto-apply", help="Apply plans without confirmation."),
    terraform_bin: str = typer.Option(None, "--terraform-bin", help="Terraform binary on the agent."),
    working_dir: str = typer.Option("", "--working-dir", help="The root module inside the code."),
    tags: list[str] = typer.Option(None, "--tag", help="A tag (repeatable)."),
    drift_interval: int = typer.Option(None, "--drift-interval", help="Minutes between drift checks."),
    description: str = typer.Option(None, "--description"),
    providers_file: Path = typer.Option(
        None,
        "--providers-file",
        exists=True,
        dir_okay=False,
        help="Provider settings (provider and terraform blocks) for resource-level runs.",
    ),
    output: Format = OUTPUT,
) -> None:
    """Create a workspace."""
    project, name = split_address(address)
    body: dict[str, Any] = {
        "project": project,
        "name": name,
        "agent_pool": pool,
        "auto_apply": auto_apply,
        "working_directory": working_dir,
        "tags": tags or [],
    }
    for key, value in (
        ("terraform_bin", terraform_bin),
        ("drift_interval_minutes", drift_interval),
        ("description", description),
        ("providers_hcl", providers_file.read_text() if providers_file else None),
    ):
        if value is not None:
            body[key] = value
    created = _client(ctx).json("POST", "/api/v1/workspaces", json=body)
    if output is Format.json:
        emit(created, output)
    else:
        typer.echo(f"created workspace {created['project']}/{created['name']} (pool {created['agent_pool']})")
        typer.echo(f"next: xcf workspace upload {address} DIR", err=True)


@workspace_app.command("list")
def workspace_list(
    ctx: typer.Context,
    project: str = typer.Option(None, "--project", "-p"),
    tag: str = typer.Option(None, "--tag"),
    output: Format = OUTPUT,
) -> None:
    """List workspaces."""
    client = _client(ctx)
    params: dict[str, str] = {k: v for k, v in {"project": project, "tag": tag}.items() if v}
    items: list[dict[str, Any]] = []
    while True:
        page = client.json("GET", "/api/v1/workspaces", params=params)
        items.extend(page["items"])
        if not page.get("next_cursor"):
            break
        params["cursor"] = page["next_cursor"]
    if output is Format.table:
        for item in items:
            item["tags"] = ", ".join(item.get("tags") or [])
    emit(items, output, WORKSPACE_COLUMNS)


@workspace_app.command("show")
def workspace_show(ctx: typer.Context, address: str = ADDRESS, output: Format = OUTPUT) -> None:
    """Show a workspace: settings, lock, current code version."""
    emit_record(_client(ctx).json("GET", workspace_path(address)), output)


@workspace_app.command("delete")
def workspace_delete(
    ctx: typer.Context,
    address: str = ADDRESS,
    yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask for confirmation."),
    output: Format = OUTPUT,
) -> None:
    """Delete a workspace with its code versions, variables and runs."""
    path = workspace_path(address)
    if not yes:
        typer.confirm(f"delete workspace {address}?", abort=True, err=True)
    _client(ctx).request("DELETE", path)
    if output is Format.json:
        emit({"workspace": address, "deleted": True}, output)
        return
    typer.echo(f"deleted workspace {address}")


@workspace_app.command("lock")
def workspace_lock(
    ctx: typer.Context,
    address: str = ADDRESS,
    reason: str = typer.Option("", "--reason", help="Shown to whoever finds it locked."),
    output: Format = OUTPUT,
) -> None:
    """Lock a workspace: no new run starts until it is unlocked."""
    ws = _client(ctx).json("POST", workspace_path(address) + "/lock", json={"reason": reason})
    if output is Format.json:
        emit(ws, output)
        return
    typer.echo(f"locked {address}" + (f": {ws['lock_reason']}" if ws.get("lock_reason") else ""))


@workspace_app.command("unlock")
def workspace_unlock(ctx: typer.Context, address: str = ADDRESS, output: Format = OUTPUT) -> None:
    """Unlock a workspace."""
    resp = _client(ctx).request("POST", workspace_path(address) + "/unlock")
    if output is Format.json:
        emit(resp.json() if resp.content else {"workspace": address, "locked": False}, output)
        return
    typer.echo(f"unlocked {address}")


# ---------------------------------------------------------------- code versions


@workspace_app.command("upload")
def workspace_upload(
    ctx: typer.Context,
    address: str = ADDRESS,
    directory: Path = typer.Argument(..., metavar="DIR", help="The configuration directory."),
    message: str = typer.Option(None, "--message", "-m", help="What changed."),
    output: Format = OUTPUT,
) -> None:
    """Upload DIR as the workspace's new code version (new runs use it)."""
    path = workspace_path(address)
    try:
        data, files, skipped = pack_directory(directory)
    except PackError as exc:
        fail(str(exc))
    if not files:
        fail(f"{directory} has no files to upload")
    if skipped:
        err.print(f"skipped: {', '.join(skipped)}", highlight=False)
    params = {"message": message} if message else {}
    version = _client(ctx).json(
        "POST",
        path + "/code-versions",
        content=data,
        params=params,
        headers={"Content-Type": "application/gzip"},
    )
    if output is Format.json:
        emit(version, output)
        return
    typer.echo(
        f"code version {version['number']} of {address}: {len(version['files'])} files, "
        f"{version['size']} bytes, sha256 {version['sha256']}"
    )


@workspace_app.command("versions")
def workspace_versions(ctx: typer.Context, address: str = ADDRESS, output: Format = OUTPUT) -> None:
    """List code versions, newest first (* marks the current one)."""
    versions = _client(ctx).json("GET", workspace_path(address) + "/code-versions")
    items = versions["items"] if isinstance(versions, dict) else versions
    if output is Format.json:
        emit(items, output)
        return
    rows = [
        {
            "number": f"{v['number']}{' *' if v.get('current') else ''}",
            "sha256": v["sha256"][:12],
            "files": len(v.get("files") or []),
            "size": v["size"],
            "message": v.get("message"),
            "created_by": v.get("created_by"),
            "created_at": v.get("created_at"),
        }
        for v in items
    ]
    emit(rows, output, ["number", "sha256", "files", "size", "message", "created_by", "created_at"])


@workspace_app.command("compare")
def workspace_compare(
    ctx: typer.Context,
    address: str = ADDRESS,
    from_number: int = typer.Argument(..., metavar="FROM"),
    to_number: int = typer.Argument(..., metavar="TO"),
    output: Format = OUTPUT,
) -> None:
    """Files added, removed and changed (with a unified diff) between two code versions."""
    data = _client(ctx).json(
        "GET",
        workspace_path(address) + "/code-versions/compare",
        params={"from": from_number, "to": to_number},
    )
    if output is Format.json:
        emit(data, output)
        return
    for path in data["added"]:
        typer.echo(f"+ {path}")
    for path in data["removed"]:
        typer.echo(f"- {path}")
    for change in data["changed"]:
        typer.echo(f"~ {change['path']}")
        if change.get("diff"):
            typer.echo(change["diff"].rstrip("\n"))
    if not (data["added"] or data["removed"] or data["changed"]):
        typer.echo(f"versions {from_number} and {to_number} hold the same files")


@workspace_app.command("rollback")
def workspace_rollback(
    ctx: typer.Context,
    address: str = ADDRESS,
    number: int = typer.Argument(..., metavar="NUMBER"),
    output: Format = OUTPUT,
) -> None:
    """Make code version NUMBER current again (new runs use it)."""
    data = _client(ctx).json("POST", workspace_path(address) + f"/code-versions/{number}/rollback")
    if output is Format.json:
        emit(data, output)
        return
    typer.echo(f"code version {number} of {address} is current")


# ---------------------------------------------------------------- variables


class _ListByDefault(TyperGroup):
    """`xcf workspace vars P/N` means `xcf workspace vars list P/N`."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and not args[0].startswith("-"):
            args = ["list", *args]
        result: list[str] = super().parse_args(ctx, args)
        return result


vars_app = typer.Typer(
    cls=_ListByDefault,
    help="Terraform and environment variables (`vars P/N` lists them).",
    no_args_is_help=True,
)
workspace_app.add_typer(vars_app, name="vars")


def _category(env: bool) -> str:
    return "env" if env else "terraform"


@vars_app.command("list")
def vars_list(ctx: typer.Context, address: str = ADDRESS, output: Format = OUTPUT) -> None:
    """List variables (sensitive values are never shown)."""
    data = _client(ctx).json("GET", workspace_path(address) + "/vars")
    items: list[dict[str, Any]] = data["items"] if isinstance(data, dict) else data
    if output is Format.table:
        for item in items:
            if item.get("sensitive"):
                item["value"] = "(sensitive)"
    emit(items, output, ["category", "key", "value", "hcl", "sensitive", "description"])


def _read_value(value: str, key: str, sensitive: bool) -> str:
    if value != "-":
        return value
    if sys.stdin.isatty():
        entered: str = typer.prompt(f"value of {key}", hide_input=True)
    else:
        text = sys.stdin.read()
        entered = text[:-1] if text.endswith("\n") else text  # `echo` adds one; keep the rest as given
    if sensitive and not entered:
        # an empty pipe (`cat missing-file | ...`) would silently store an empty secret
        fail(f"standard input gave no value for sensitive variable {key}: nothing was set", 2)
    return entered


@vars_app.command("set")
def vars_set(
    ctx: typer.Context,
    address: str = ADDRESS,
    key: str = typer.Argument(..., metavar="KEY"),
    value: str = typer.Argument(..., metavar="VALUE", help="The value; `-` reads it from stdin."),
    env: bool = typer.Option(False, "--env", help="An environment variable (default: Terraform)."),
    hcl: bool = typer.Option(False, "--hcl", help="The value is an HCL expression (list, map...)."),
    sensitive: bool = typer.Option(False, "--sensitive", help="Write-only: never shown again."),
    description: str = typer.Option(None, "--description"),
    output: Format = OUTPUT,
) -> None:
    """Create or replace a variable. Pass VALUE as `-` to keep secrets out of shell history."""
    path = workspace_path(address) + f"/vars/{_category(env)}/{quote(key, safe='')}"
    body: dict[str, Any] = {"value": _read_value(value, key, sensitive), "hcl": hcl, "sensitive": sensitive}
    if description is not None:
        body["description"] = description
    saved = _client(ctx).json("PUT", path, json=body)
    if output is Format.json:
        emit(saved, output)
        return
    flags = [f for f, on in (("hcl", saved.get("hcl")), ("sensitive", saved.get("sensitive"))) if on]
    typer.echo(
        f"set {saved.get('category', _category(env))} variable {key} of {address}"
        + (f" ({', '.join(flags)})" if flags else "")
    )


@vars_app.command("delete")
def vars_delete(
    ctx: typer.Context,
    address: str = ADDRESS,
    key: str = typer.Argument(..., metavar="KEY"),
    env: bool = typer.Option(False, "--env", help="An environment variable (default: Terraform)."),
    output: Format = OUTPUT,
) -> None:
    """Delete a variable."""
    path = workspace_path(address) + f"/vars/{_category(env)}/{quote(key, safe='')}"
    _client(ctx).request("DELETE", path)
    if output is Format.json:
        emit({"workspace": address, "category": _category(env), "key": key, "deleted": True}, output)
        return
    typer.echo(f"deleted {_category(env)} variable {key} of {address}")
