"""`xcf conflux ...`: the config center from the command line (over HTTP only).

get, publish, resolve, watch, history, diff, rollback, policy. A config is named by its address
`tenant/application/environment/name`. `history` prints what is effective now (stable + rules) next
to what was published, so the two are never confused.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote

import typer

from xcloudflow.cli.client import Client, fail
from xcloudflow.cli.output import Format, emit, out

conflux_app = typer.Typer(
    help="Config center: versioned configs, releases, canary policies, live updates.", no_args_is_help=True
)
OUTPUT = typer.Option(Format.table, "--output", "-o", help="table or json")
ADDRESS = typer.Argument(..., metavar="TENANT/APP/ENV/NAME", help="The config's address.")


def _client(ctx: typer.Context, timeout: float = 120.0) -> Client:
    return Client(ctx.obj["server"], ctx.obj["token"], timeout=timeout)


def _parts(address: str, count: int) -> list[str]:
    parts = address.strip().strip("/").split("/")
    if len(parts) != count or not all(parts):
        shape = "tenant/application/environment/name" if count == 4 else "tenant/application/environment"
        fail(f"expected {shape}, got {address!r}", 2)
    return parts


def config_path(address: str) -> str:
    return "/api/v1/conflux/configs/" + "/".join(quote(p, safe="") for p in _parts(address, 4))


def read_text(file: str | Path, what: str) -> str:
    """A file's text ('-': standard input), or a one-line error (exit 1) that says which file and why."""
    if str(file) == "-":
        return sys.stdin.read()
    try:
        return Path(file).read_text(encoding="utf-8")
    except FileNotFoundError:
        fail(f"{what} {file}: no such file")
    except IsADirectoryError:
        fail(f"{what} {file}: is a directory, not a file")
    except UnicodeDecodeError as exc:
        fail(f"{what} {file}: not UTF-8 text (byte {exc.start})")
    except OSError as exc:
        fail(f"{what} {file}: {exc.strerror or exc}")


def _record(data: dict[str, Any], fmt: Format) -> None:
    if fmt is Format.json:
        emit(data, fmt)
        return
    rows = [
        {"field": k, "value": json.dumps(v) if isinstance(v, dict | list) else v} for k, v in data.items()
    ]
    emit(rows, fmt, ["field", "value"])


def _rules_rows(rules: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        {
            "rule": r["name"],
            "priority": r["priority"],
            "version": r["version"],
            "labels": ",".join(f"{k}={v}" for k, v in r["labels"].items()) or "(all)",
            "percentage": r.get("percentage"),
        }
        for r in rules
    ]


@conflux_app.command("get")
def get(
    ctx: typer.Context,
    address: str = ADDRESS,
    version: int = typer.Option(None, "--version", "-v", help="Print this version's content instead."),
    output: Format = OUTPUT,
) -> None:
    """Show a config (format, schema, latest and stable version, policy), or one version's content."""
    client = _client(ctx)
    if version is not None:
        data = client.json("GET", f"{config_path(address)}/versions/{version}")
        if output is Format.json:
            emit(data, output)
        else:
            sys.stdout.write(data["content"])
        return
    _record(client.json("GET", config_path(address)), output)


@conflux_app.command("publish")
def publish(
    ctx: typer.Context,
    address: str = ADDRESS,
    file: str = typer.Argument(..., metavar="FILE", help="The content ('-': standard input)."),
    stable: bool = typer.Option(False, "--stable", help="Make the new version stable at once."),
    description: str = typer.Option(None, "--description", "-m"),
    fmt: str = typer.Option(
        None, "--format", help="Create the config with this format first if it does not exist."
    ),
    idempotency_key: str = typer.Option(None, "--idempotency-key", help="Retries with it publish once."),
    expected_version: int = typer.Option(
        None, "--expected-version", help="Fail (409) unless the latest version is this one (0: none)."
    ),
    output: Format = OUTPUT,
) -> None:
    """Publish a new version (validated by the server against the format and schema)."""
    client = _client(ctx)
    content = read_text(file, "content file")
    path = config_path(address)
    if fmt is not None and client.request("GET", path, ok=(200, 404)).status_code == 404:
        client.json("PUT", path, json={"format": fmt})
    body: dict[str, Any] = {"content": content, "is_stable": stable, "source": "cli"}
    for key, value in (
        ("description", description),
        ("idempotency_key", idempotency_key),
        ("expected_version", expected_version),
    ):
        if value is not None:
            body[key] = value
    data = client.json("POST", f"{path}/publish", json=body, ok=(200, 201))
    if output is Format.json:
        emit(data, output)
        return
    version = data["version"]
    stable_ref = data["stable"]
    replay = " (replayed: published earlier with this key)" if data["replayed"] else ""
    out.print(
        f"{address}: version {version['number']} ({version['checksum'][:12]}){replay}; "
        f"stable: {stable_ref['number'] if stable_ref else 'none'}",
        highlight=False,
    )


@conflux_app.command("resolve")
def resolve(
    ctx: typer.Context,
    address: str = ADDRESS,
    labels: list[str] = typer.Option(None, "--label", "-l", help="k=v (repeatable, or k=v,k2=v2)."),
    client_id: str = typer.Option(None, "--client-id", help="For percentage rules."),
    output: Format = OUTPUT,
) -> None:
    """Print what a client with these labels gets now (content; -o json: version, rule, checksum)."""
    params: dict[str, str] = {"labels": ",".join(labels or [])}
    if client_id:
        params["client_id"] = client_id
    data = _client(ctx).json("GET", f"{config_path(address)}/resolve", params=params)
    if output is Format.json:
        emit(data, output)
        return
    sys.stdout.write(data["content"])
    rule = f"rule {data['rule']}" if data["rule"] else "stable"
    print(f"# version {data['version']} ({rule})", file=sys.stderr)


@conflux_app.command("watch")
def watch(
    ctx: typer.Context,
    environment: str = typer.Argument(..., metavar="TENANT/APP/ENV", help="The environment to watch."),
    names: str = typer.Option(None, "--names", help="Only these configs (comma-separated)."),
    since: int = typer.Option(None, "--since", help="Start after this notification id (default: now)."),
    once: bool = typer.Option(False, "--once", help="Stop after the first notifications."),
    timeout: float = typer.Option(60.0, "--timeout", help="Seconds per long poll (at most 60)."),
) -> None:
    """Print changes as they happen, one JSON line per notification (Ctrl-C to stop)."""
    tenant, application, env = _parts(environment, 3)
    client = _client(ctx, timeout=timeout + 30)
    params: dict[str, Any] = {"tenant": tenant, "application": application, "environment": env}
    if names:
        params["names"] = names
    if since is None:
        since = client.json("GET", "/api/v1/conflux/watch", params=params)["last_id"]
    while True:
        resp = client.request(
            "GET",
            "/api/v1/conflux/watch",
            params={**params, "since": since, "timeout": timeout},
            ok=(200, 304),
        )
        if resp.status_code == 304:
            continue
        data = resp.json()
        for note in data["notifications"]:
            print(json.dumps(note), flush=True)
        since = data["last_id"]
        if once:
            return
        time.sleep(0)


@conflux_app.command("history")
def history(
    ctx: typer.Context,
    address: str = ADDRESS,
    limit: int = typer.Option(20, "--limit", "-n"),
    output: Format = OUTPUT,
) -> None:
    """What is effective now (stable + rules) next to every published version and stable change."""
    data = _client(ctx).json("GET", f"{config_path(address)}/history", params={"limit": limit})
    if output is Format.json:
        emit(data, output)
        return
    effective = data["effective"]
    stable = effective["stable"]
    out.print(f"[bold]Effective now[/bold]: stable version {stable['number'] if stable else '(none)'}")
    if effective["rules"]:
        emit(_rules_rows(effective["rules"]), output)
    out.print("[bold]Published versions[/bold] (newest first)")
    emit(
        [
            {
                "version": v["number"],
                "effective": ", ".join(
                    (["STABLE"] if v["stable"] else []) + [f"rule {r}" for r in v["rules"]]
                ),
                "created": v["created_at"],
                "author": v["author"],
                "source": v["source"],
                "description": v["description"],
                "checksum": v["checksum"][:12],
            }
            for v in data["versions"]
        ],
        output,
        ["version", "effective", "created", "author", "source", "description", "checksum"],
    )
    out.print("[bold]Stable changes[/bold] (newest first)")
    emit(data["releases"], output, ["version", "released_at", "released_by", "note"])


@conflux_app.command("diff")
def diff(
    ctx: typer.Context,
    address: str = ADDRESS,
    old: int = typer.Argument(..., metavar="FROM"),
    new: int = typer.Argument(..., metavar="TO"),
) -> None:
    """The unified diff between two versions."""
    data = _client(ctx).json("GET", f"{config_path(address)}/diff", params={"from": old, "to": new})
    sys.stdout.write(data["diff"] or f"versions {old} and {new} are identical\n")


@conflux_app.command("rollback")
def rollback(
    ctx: typer.Context,
    address: str = ADDRESS,
    version: int = typer.Argument(..., metavar="VERSION", help="The version to make stable again."),
    note: str = typer.Option(None, "--note", "-m", help="Why (kept in the release history)."),
    output: Format = OUTPUT,
) -> None:
    """Make an earlier version stable again (a new release event; nothing is deleted)."""
    body: dict[str, Any] = {"version": version}
    if note:
        body["note"] = note
    _record(_client(ctx).json("POST", f"{config_path(address)}/releases", json=body, ok=(200, 201)), output)


@conflux_app.command("policy")
def policy(
    ctx: typer.Context,
    address: str = ADDRESS,
    file: Path = typer.Option(
        None, "--file", "-f", help='Replace the rules with this JSON/YAML: {"rules": [...]}'
    ),
    clear: bool = typer.Option(
        False, "--clear", help="Remove every rule (only the stable version is served)."
    ),
    output: Format = OUTPUT,
) -> None:
    """Show the release policy, or replace it (--file) or clear it (--clear)."""
    client = _client(ctx)
    path = f"{config_path(address)}/policy"
    if file is not None and clear:
        fail("give --file or --clear, not both", 2)
    if file is not None:
        import yaml

        text = read_text(file, "policy file")
        try:
            body = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f":{mark.line + 1}:{mark.column + 1}" if mark is not None else ""
            problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
            fail(f"policy file {file}{where}: not valid YAML or JSON: {problem}")
        if isinstance(body, list):
            body = {"rules": body}
        if not isinstance(body, dict):
            fail(
                f'policy file {file}: expected {{"rules": [...]}} or a list of rules, got {type(body).__name__}'
            )
        data = client.json("PUT", path, json=body)
    elif clear:
        data = client.json("PUT", path, json={"rules": []})
    else:
        data = client.json("GET", path)
    if output is Format.json:
        emit(data, output)
        return
    out.print(f"policy revision {data['revision']}")
    if data["rules"]:
        emit(_rules_rows(data["rules"]), output)
    else:
        out.print("no rules: every client gets the stable version")
