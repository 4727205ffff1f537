"""`xcf inventory list|show|history|errors` and `xcf graph blast-radius|export` (through the API).

`inventory_app` is also where the server-side `rebuild` and `worker` commands are registered (from
`inventory_admin`); this module only talks HTTP.
"""

from __future__ import annotations

import json
from typing import Any

import typer

from xcloudflow.cli.client import Client, fail
from xcloudflow.cli.output import Format, emit

inventory_app = typer.Typer(
    help="Resources across every stack: listing, attributes, change history.", no_args_is_help=True
)
graph_app = typer.Typer(
    help="Dependencies between resources: blast radius, graph export.", no_args_is_help=True
)
OUTPUT = typer.Option(Format.table, "--output", "-o", help="table or json")
RESOURCE_COLUMNS = ["stable_uid", "tool", "project", "stack", "type", "addr", "cloud", "region"]
EVENT_COLUMNS = ["at", "state_version", "action", "addr", "changes"]


UID = typer.Argument(..., metavar="UID", help="The resource's stable_uid or a unique prefix of it.")


def _client(ctx: typer.Context) -> Client:
    return Client(ctx.obj["server"], ctx.obj["token"])


def _uid(client: Client, given: str) -> str:
    params = {"limit": 500, "include_deleted": "true"}
    return client.resolve_id(given, "resource", "/api/v1/resources", params, key="stable_uid")


def _all_pages(client: Client, path: str, params: dict[str, Any], limit: int | None) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    params = dict(params)
    while True:
        page = client.json("GET", path, params=params)
        items.extend(page["items"])
        if not page["next_cursor"] or (limit is not None and len(items) >= limit):
            break
        params["cursor"] = page["next_cursor"]
    return items[:limit] if limit is not None else items


@inventory_app.command("list")
def inventory_list(
    ctx: typer.Context,
    tool: str = typer.Option(None, "--tool"),
    project: str = typer.Option(None, "--project", "-p"),
    stack: str = typer.Option(None, "--stack", "-s"),
    provider: str = typer.Option(None, "--provider"),
    rtype: str = typer.Option(None, "--type", help="Resource type, e.g. aws_vpc."),
    cloud: str = typer.Option(None, "--cloud"),
    region: str = typer.Option(None, "--region"),
    kind: str = typer.Option(None, "--kind", help="managed, data, stack, provider or component."),
    q: str = typer.Option(None, "--q", "--search", help="Text in the address."),
    attr: list[str] = typer.Option(None, "--attr", help="PATH:VALUE on the attributes (repeatable)."),
    include_deleted: bool = typer.Option(False, "--include-deleted"),
    limit: int = typer.Option(None, "--limit", help="At most this many (default: all)."),
    output: Format = OUTPUT,
) -> None:
    """List resources, filtered; e.g. `--type aws_vpc --attr tags.env:prod`."""
    params: dict[str, Any] = {
        k: v
        for k, v in {
            "tool": tool,
            "project": project,
            "stack": stack,
            "provider": provider,
            "type": rtype,
            "cloud": cloud,
            "region": region,
            "kind": kind,
            "q": q,
        }.items()
        if v
    }
    if attr:
        params["attr"] = list(attr)
    columns = list(RESOURCE_COLUMNS)
    if include_deleted:
        params["include_deleted"] = "true"
        columns.append("deleted_at")
    if limit is not None:
        params["limit"] = min(max(limit, 1), 500)
    items = _all_pages(_client(ctx), "/api/v1/resources", params, limit)
    emit(items, output, columns)


@inventory_app.command("show")
def inventory_show(ctx: typer.Context, uid: str = UID, output: Format = OUTPUT) -> None:
    """A resource: placement, redacted attributes and its dependency edges."""
    client = _client(ctx)
    data = client.json("GET", f"/api/v1/resources/{_uid(client, uid)}")
    if output is Format.json:
        emit(data, output)
        return
    attrs = data.pop("attrs")
    depends_on, dependents = data.pop("depends_on"), data.pop("dependents")
    emit(data, output)
    typer.echo(json.dumps(attrs, indent=2, sort_keys=True))
    for title, links in (("depends on", depends_on), ("depended on by", dependents)):
        for link in links:
            where = f"{link['tool']}/{link['project']}/{link['stack']}" if link["stack"] else "?"
            typer.echo(f"{title}: {link['addr'] or link['stable_uid']} ({link['kind']}, {where})")


def _changes(event: dict[str, Any]) -> str:
    patch = event.get("patch_json") or []
    return ", ".join(f"{op['op']} {op['path']}" for op in patch[:5]) + (" ..." if len(patch) > 5 else "")


@inventory_app.command("history")
def inventory_history(
    ctx: typer.Context,
    uid: str = UID,
    limit: int = typer.Option(50, "--limit"),
    output: Format = OUTPUT,
) -> None:
    """A resource's events, newest first, with what each one changed."""
    client = _client(ctx)
    items = _all_pages(
        client, f"/api/v1/resources/{_uid(client, uid)}/history", {"limit": min(max(limit, 1), 500)}, limit
    )
    if output is Format.json:
        emit(items, output)
        return
    emit([{**e, "changes": _changes(e)} for e in items], output, EVENT_COLUMNS)


@inventory_app.command("errors")
def inventory_errors(
    ctx: typer.Context,
    tool: str = typer.Option(None, "--tool"),
    project: str = typer.Option(None, "--project", "-p"),
    stack: str = typer.Option(None, "--stack", "-s"),
    output: Format = OUTPUT,
) -> None:
    """State versions the inventory could not read, newest first."""
    params = {k: v for k, v in {"tool": tool, "project": project, "stack": stack}.items() if v}
    items = _client(ctx).json("GET", "/api/v1/inventory/errors", params=params)
    emit(items, output, ["at", "tool", "project", "stack", "state_version", "message"])


@graph_app.command("blast-radius")
def blast_radius(
    ctx: typer.Context,
    uid: str = UID,
    direction: str = typer.Option(
        "downstream", "--direction", help="downstream (what depends on it) or upstream."
    ),
    max_depth: int = typer.Option(10, "--max-depth", help="1-50."),
    output: Format = OUTPUT,
) -> None:
    """What breaks if UID goes (downstream), or what UID needs (upstream), with distances."""
    if direction not in ("downstream", "upstream"):
        fail("--direction is downstream or upstream", 2)
    client = _client(ctx)
    data = client.json(
        "GET",
        f"/api/v1/graph/blast-radius/{_uid(client, uid)}",
        params={"direction": direction, "max_depth": max_depth},
    )
    if output is Format.json:
        emit(data, output)
        return
    emit(data["items"], output, ["depth", "kind", "tool", "project", "stack", "type", "addr", "stable_uid"])


@graph_app.command("export")
def graph_export(
    ctx: typer.Context,
    stack: list[str] = typer.Option(None, "--stack", "-s", help="Repeatable; default every stack."),
    project: str = typer.Option(None, "--project", "-p"),
    tool: str = typer.Option(None, "--tool"),
    fmt: str = typer.Option("dot", "--output", "-o", "--format", help="dot, mermaid or json."),
) -> None:
    """Print the dependency graph of some stacks (cross-stack edges included) for Graphviz or Mermaid."""
    if fmt not in ("dot", "mermaid", "json"):
        fail("--output is dot, mermaid or json", 2)
    params: dict[str, Any] = {"format": fmt}
    if stack:
        params["stack"] = list(stack)
    if project:
        params["project"] = project
    if tool:
        params["tool"] = tool
    resp = _client(ctx).request("GET", "/api/v1/graph", params=params)
    if fmt == "json":
        emit(resp.json(), Format.json)
    else:
        typer.echo(resp.text, nl=False)
