"""`xcf gitops ...`: GitOps sources (ConfluxSource) on the server: add, list, sync, status, diff.

`status` prints a source the way `kubectl describe` prints a resource: spec, status with the Ready
condition and per-document results, then the events. `diff` prints the server's dry-run preview as
Markdown (what a sync would publish, secrets masked), ready to paste into a pull request. Exit codes:
`sync` 1 when the source is not Ready afterwards; `diff` 1 when a document would fail. Only HTTP:
nothing here touches the database.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import typer

from xcloudflow.cli.client import Client, fail
from xcloudflow.cli.output import Format, emit, out

gitops_app = typer.Typer(
    help="GitOps: sync Git repositories of ConfluxConfig documents.", no_args_is_help=True
)
source_app = typer.Typer(help="GitOps sources (ConfluxSource).", no_args_is_help=True)
gitops_app.add_typer(source_app, name="source")
OUTPUT = typer.Option(Format.table, "--output", "-o", help="table or json")
NAME = typer.Argument(..., metavar="SOURCE", help="The source's name.")


def _client(ctx: typer.Context) -> Client:
    return Client(ctx.obj["server"], ctx.obj["token"])


def _ref_text(ref: dict[str, Any]) -> str:
    return " ".join(f"{k} {v}" for k, v in ref.items() if v)


def _age(when: str | None, now: datetime | None = None) -> str:
    if not when:
        return "-"
    then = datetime.fromisoformat(when.replace("Z", "+00:00"))
    seconds = int(((now or datetime.now(UTC)) - then).total_seconds())
    if seconds < 0:
        return f"in {_span(-seconds)}"
    return _span(seconds)


def _span(seconds: int) -> str:
    if seconds < 120:
        return f"{seconds}s"
    if seconds < 7200:
        return f"{seconds // 60}m"
    if seconds < 172800:
        return f"{seconds // 3600}h"
    return f"{seconds // 86400}d"


def _table(rows: list[list[str]], indent: str) -> list[str]:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return [indent + "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]


def describe(source: dict[str, Any], events: list[dict[str, Any]]) -> str:
    """`kubectl describe`-style text of a source and its events."""
    status = source["status"]
    lines = [
        f"Name:         {source['name']}",
        "Kind:         ConfluxSource",
        f"URL:          {source['url']}",
        f"Ref:          {_ref_text(source['ref'])}",
        f"Path:         {source['path'] or '/'}",
        f"Interval:     {source['interval']}",
        f"Secret Ref:   {source['secret_ref']['name'] if source.get('secret_ref') else '<none>'}",
        f"Suspend:      {str(source['suspend']).lower()}",
        f"Prune:        {str(source.get('prune', False)).lower()}",
        f"Webhook:      POST {source['webhook_path']}",
        f"Created:      {source['created_at']} by {source.get('created_by') or '-'}",
        "Status:",
        f"  Last Fetched Commit:  {status.get('last_fetched_commit') or '<none>'} ({_age(status.get('last_fetched_at'))} ago)",
        f"  Last Synced Commit:   {status.get('last_synced_commit') or '<none>'} ({_age(status.get('last_synced_at'))} ago)",
        f"  Next Sync:            {_age(status.get('next_sync_at')) if status.get('next_sync_at') else '<suspended>'}",
        f"  Sync Status:          {status.get('sync_status', 'Unknown')}",
        "  Conditions:",
    ]
    conditions = [["Type", "Status", "Reason", "Age", "Message"]] + [
        [c["type"], c["status"], c["reason"], _age(c["last_transition_time"]), c["message"]]
        for c in status["conditions"]
    ]
    lines += _table(conditions, "    ")
    lines.append("  Documents:")
    if status["documents"]:
        docs = [["Path", "Config", "Result", "Version", "Message"]] + [
            [
                f"{d['path']}:{d['line']}" if d.get("line") else d["path"],
                d.get("address") or "-",
                d["result"],
                str(d["version"]) if d.get("version") is not None else "-",
                d.get("message") or "",
            ]
            for d in status["documents"]
        ]
        lines += _table(docs, "    ")
    else:
        lines.append("    <none>")
    if status.get("orphans"):
        lines.append("  Orphans (removed from Git, require pruning):")
        orphans = [["Config", "Path", "Version", "Message"]] + [
            [
                o["address"],
                o["path"],
                str(o["version"]) if o.get("version") is not None else "-",
                o["message"],
            ]
            for o in status["orphans"]
        ]
        lines += _table(orphans, "    ")
    lines.append("Events:")
    if events:
        rows = [["Type", "Reason", "Age", "Count", "Message"]] + [
            [e["type"], e["reason"], _age(e["last_at"]), str(e["count"]), e["message"]] for e in events
        ]
        lines += _table(rows, "  ")
    else:
        lines.append("  <none>")
    return "\n".join(lines)


@source_app.command("add")
def add_source(
    ctx: typer.Context,
    name: str = typer.Argument(None, help="Source name (omit with -f)."),
    file: Path = typer.Option(None, "--file", "-f", help="A `kind: ConfluxSource` YAML document."),
    url: str = typer.Option(
        None, "--url", help="Git URL (https://, ssh://, user@host:path, file://) or absolute path."
    ),
    branch: str = typer.Option(None, "--branch"),
    tag: str = typer.Option(None, "--tag"),
    commit: str = typer.Option(None, "--commit"),
    interval: str = typer.Option("1m", "--interval", help='How often to sync: "30s", "1m", "1h".'),
    path: str = typer.Option("", "--path", help="Directory of the repository to scan."),
    secret_ref: str = typer.Option(None, "--secret-ref", help="Secret with username/password (https)."),
    prune: bool = typer.Option(
        False, "--prune", help="Delete configs whose document is removed from Git (default: report them)."
    ),
    output: Format = OUTPUT,
) -> None:
    """Register a source; prints its webhook secret once."""
    if file is not None:
        import yaml

        try:
            body = yaml.safe_load(file.read_text())
        except (OSError, yaml.YAMLError) as exc:
            fail(f"{file}: {exc}", 2)
        if not isinstance(body, dict):
            fail(f"{file}: not a ConfluxSource document", 2)
    else:
        if not name or not url:
            fail("give SOURCE and --url, or -f source.yaml", 2)
        refs = {k: v for k, v in (("branch", branch), ("tag", tag), ("commit", commit)) if v}
        if len(refs) > 1:
            fail("give at most one of --branch, --tag, --commit", 2)
        body = {
            "name": name,
            "url": url,
            "ref": refs or {"branch": "main"},
            "interval": interval,
            "path": path,
            "prune": prune,
        }
        if secret_ref:
            body["secretRef"] = {"name": secret_ref}
    created = _client(ctx).json("POST", "/api/v1/gitops/sources", json=body)
    if output is Format.json:
        emit(created, output)
        return
    out.print(
        f"source {created['name']} added ({created['url']}, {_ref_text(created['ref'])})", highlight=False
    )
    out.print(f"webhook: POST {created['webhook_path']} (X-Hub-Signature-256, HMAC-SHA256)", highlight=False)
    out.print(f"webhook secret (shown once): {created['webhook_secret']}", highlight=False)


@source_app.command("list")
def list_sources(ctx: typer.Context, output: Format = OUTPUT) -> None:
    items = _client(ctx).json("GET", "/api/v1/gitops/sources")
    if output is Format.json:
        emit(items, output)
        return
    rows = []
    for s in items:
        ready = s["status"]["conditions"][0]
        rows.append(
            {
                "name": s["name"],
                "url": s["url"],
                "ref": _ref_text(s["ref"]),
                "interval": s["interval"],
                "ready": ready["status"],
                "synced": (s["status"].get("last_synced_commit") or "")[:12],
                "message": ready["message"],
            }
        )
    emit(rows, output, ["name", "url", "ref", "interval", "ready", "synced", "message"])


@source_app.command("set")
def set_source(
    ctx: typer.Context,
    name: str = NAME,
    prune: bool = typer.Option(
        None, "--prune/--no-prune", help="Delete (or only report) configs whose document left Git."
    ),
    suspend: bool = typer.Option(
        None, "--suspend/--resume", help="Stop or resume interval and webhook syncs."
    ),
    output: Format = OUTPUT,
) -> None:
    """Change a source's prune or suspend."""
    body = {k: v for k, v in (("prune", prune), ("suspend", suspend)) if v is not None}
    if not body:
        fail("give --prune/--no-prune or --suspend/--resume", 2)
    source = _client(ctx).json("PATCH", f"/api/v1/gitops/sources/{name}", json=body)
    if output is Format.json:
        emit(source, output)
        return
    out.print(
        f"source {name}: prune {str(source['prune']).lower()}, suspend {str(source['suspend']).lower()}",
        highlight=False,
    )


@source_app.command("delete")
def delete_source(ctx: typer.Context, name: str = NAME, output: Format = OUTPUT) -> None:
    """Forget a source (configs it published stay)."""
    _client(ctx).request("DELETE", f"/api/v1/gitops/sources/{name}")
    if output is Format.json:
        emit({"deleted": name}, output)
        return
    out.print(f"deleted source {name}", highlight=False)


def sync(
    ctx: typer.Context,
    name: str = NAME,
    force: bool = typer.Option(True, "--force/--if-new", help="Publish even when the commit was synced."),
    output: Format = OUTPUT,
) -> None:
    """Sync a source now and print its status; exit 1 when it is not Ready."""
    client = _client(ctx)
    source = client.json("POST", f"/api/v1/gitops/sources/{name}/sync", params={"force": str(force).lower()})
    if output is Format.json:
        emit(source, output)
    else:
        events = client.json("GET", f"/api/v1/gitops/sources/{name}/events", params={"limit": 20})
        out.print(describe(source, events), highlight=False, markup=False, soft_wrap=True)
    if source["status"]["conditions"][0]["status"] != "True":
        raise typer.Exit(1)


def status(ctx: typer.Context, name: str = NAME, output: Format = OUTPUT) -> None:
    """Describe a source: spec, status (Ready, documents) and events, like `kubectl describe`."""
    client = _client(ctx)
    source = client.json("GET", f"/api/v1/gitops/sources/{name}")
    events = client.json("GET", f"/api/v1/gitops/sources/{name}/events", params={"limit": 50})
    if output is Format.json:
        emit({**source, "events": events}, output)
        return
    out.print(describe(source, events), highlight=False, markup=False, soft_wrap=True)


def diff(
    ctx: typer.Context,
    name: str = NAME,
    ref: str = typer.Option(None, "--ref", help="Branch, tag or commit to preview (default: the source's)."),
    output: Format = OUTPUT,
) -> None:
    """Dry run: print as Markdown what a sync would publish (secrets masked); publishes nothing."""
    preview = _client(ctx).json(
        "GET", f"/api/v1/gitops/sources/{name}/diff", params={"ref": ref} if ref else None
    )
    if output is Format.json:
        emit(preview, output)
    else:
        print(preview["markdown"])
    if any(d["action"] == "failed" for d in preview["documents"]):
        raise typer.Exit(1)


for _app in (gitops_app, source_app):
    _app.command("sync")(sync)
    _app.command("status")(status)
    _app.command("diff")(diff)
