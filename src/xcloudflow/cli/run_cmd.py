"""`xcf run ...`: start Terraform runs of a workspace, follow them live, confirm, discard, cancel.

A run is followed with the server's Server-Sent Events log stream (`GET /api/v1/runs/{id}/logs?follow=true`):
log lines go to stdout (to stderr with `--output json`, where stdout is the run's JSON), and a live status
line (stage, elapsed time, plan summary) is drawn on stderr when stderr is a terminal; otherwise each
stage change is one plain line. The stream resumes from the last cursor if the connection drops.
Exit codes follow `terraform plan -detailed-exitcode`: 0 no changes or applied, 2 changes waiting for
confirmation, 1 errored, canceled or discarded. Only HTTP: nothing here touches the database.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterator
from typing import Any, NoReturn

import httpx
import typer
from rich.text import Text

from xcloudflow.cli.client import Client, err, fail
from xcloudflow.cli.output import Format, emit
from xcloudflow.cli.workspace_cmd import ADDRESS, emit_record, workspace_path

run_app = typer.Typer(help="Terraform runs: plan, apply, confirm, follow logs.", no_args_is_help=True)
OUTPUT = typer.Option(Format.table, "--output", "-o", help="table or json")
RUN_ID = typer.Argument(
    ...,
    metavar="RUN_ID",
    help="The run's ID or a unique prefix of it (shown when it starts, and by `run list`).",
)
TARGETS = typer.Option(None, "--target", help="Limit to this resource address (repeatable).")
FINAL_STAGES = ("planned_and_finished", "applied", "errored", "canceled", "discarded")
RECONNECTS = 5


def _client(ctx: typer.Context) -> Client:
    return Client(ctx.obj["server"], ctx.obj["token"])


def run_id_of(client: Client, given: str) -> str:
    """The full ID of RUN_ID (an ID, or a unique prefix of one, like git)."""
    return client.resolve_id(given, "run", "/api/v1/runs", {"limit": 500})


def summary_text(run: dict[str, Any]) -> str:
    """`N to add, M to change, K to destroy` (and imports when there are any), or '' before the plan."""
    summary = run.get("summary")
    if not summary:
        return ""
    text = (
        f"{summary.get('add', 0)} to add, {summary.get('change', 0)} to change, "
        f"{summary.get('destroy', 0)} to destroy"
    )
    if summary.get("import"):
        text += f", {summary['import']} to import"
    return text


def _label(run: dict[str, Any]) -> str:
    return f"run #{run['number']} of {run['workspace']}"


# ---------------------------------------------------------------- following a run


class _Status:
    """The live status line; Rich renders it a few times a second, so the elapsed time ticks."""

    def __init__(self, run: dict[str, Any]) -> None:
        self.run = run
        self.started = time.monotonic()

    def __rich__(self) -> Text:
        run = self.run
        elapsed = int(time.monotonic() - self.started)
        stage = run["stage"]
        if stage == "pending" and run.get("queue_position"):
            stage += f" ({run['queue_position']} ahead)"
        parts = [f"{_label(run)}", stage, f"{elapsed // 60}:{elapsed % 60:02d}"]
        if summary_text(run):
            parts.append(summary_text(run))
        return Text(" · ".join(parts), style="bold")


def _sse(resp: httpx.Response) -> Iterator[tuple[str, str, str | None]]:
    """(event, data, id) for each event of a text/event-stream response."""
    event, event_id = "message", None
    data: list[str] = []
    for line in resp.iter_lines():
        if not line:
            if data:
                yield event, "\n".join(data), event_id
            event, data, event_id = "message", [], None
            continue
        if line.startswith(":"):
            continue  # keep-alive comment
        field, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        if field == "event":
            event = value
        elif field == "data":
            data.append(value)
        elif field == "id":
            event_id = value


def _http_error(resp: httpx.Response, what: str) -> NoReturn:
    resp.read()
    try:
        message = resp.json()["error"]["message"]
    except (ValueError, KeyError, TypeError):
        message = resp.text[:500] or resp.reason_phrase
    fail(f"{what}: {resp.status_code} {message}")


class _Follower:
    """Streams one run's log until the server says `end` (final stage, or waiting for confirmation)."""

    def __init__(self, client: Client, run: dict[str, Any], *, logs_to_stderr: bool) -> None:
        self.client = client
        self.run = run
        self.sink = sys.stderr if logs_to_stderr else sys.stdout
        self.tty = sys.stderr.isatty()
        self.status = _Status(run)
        self.live: Any = None

    def _line(self, text: str) -> None:
        if self.live is not None and self.sink.isatty():
            self.live.console.print(Text(text.rstrip("\n")), highlight=False, markup=False)
        else:
            self.sink.write(text if text.endswith("\n") else text + "\n")
            self.sink.flush()

    def _stage(self, stage: str) -> None:
        if stage != self.run["stage"] or self.run.get("summary") is None:
            self.run = self.client.json("GET", f"/api/v1/runs/{self.run['id']}")
            self.run["stage"] = stage  # the event's stage wins over a read that raced it
            self.status.run = self.run
        if not self.tty:
            summary = summary_text(self.run)
            err.print(f"{_label(self.run)}: {stage}" + (f" ({summary})" if summary else ""), highlight=False)

    def _stream(self, after: str | None) -> tuple[bool, str | None]:
        """One connection; (ended, last cursor)."""
        params = {"follow": "true", **({"after": after} if after else {})}
        path = f"/api/v1/runs/{self.run['id']}/logs"
        timeout = httpx.Timeout(30.0, read=90.0)  # the server sends a keep-alive every 15 s
        with self.client.http.stream(
            "GET", path, params=params, headers={"Accept": "text/event-stream"}, timeout=timeout
        ) as resp:
            if resp.status_code != 200:
                _http_error(resp, f"GET {path}")
            for event, data, event_id in _sse(resp):
                payload = json.loads(data)
                if event == "log":
                    self._line(payload["text"])
                    after = event_id or payload.get("cursor") or after
                elif event == "stage":
                    self._stage(payload["stage"])
                elif event == "end":
                    return True, after
        return False, after

    def follow(self, after: str | None = None) -> tuple[dict[str, Any], str | None]:
        from rich.live import Live

        attempts = 0
        live = (
            Live(self.status, console=err, refresh_per_second=4, transient=True, redirect_stdout=False)
            if self.tty
            else None
        )
        try:
            if live is not None:
                live.start()
                self.live = live
            while True:
                try:
                    ended, cursor = self._stream(after)
                except (httpx.TransportError, httpx.DecodingError) as exc:
                    attempts += 1
                    if attempts > RECONNECTS:
                        fail(f"lost the log stream of {_label(self.run)}: {exc}")
                    time.sleep(min(2.0**attempts / 4, 5.0))
                    continue
                if cursor != after:
                    attempts = 0
                after = cursor
                if ended:
                    break
                attempts += 1  # the server closed the stream early: resume from the cursor
                if attempts > RECONNECTS:
                    fail(f"the log stream of {_label(self.run)} kept closing before the run ended")
        except KeyboardInterrupt:
            if live is not None:
                live.stop()
            err.print(
                f"stopped following {_label(self.run)}; it goes on: `xcf run logs --follow {self.run['id']}` "
                f"follows it again, `xcf run cancel {self.run['id']}` stops it",
                highlight=False,
            )
            raise typer.Exit(130) from None
        finally:
            if live is not None:
                live.stop()
            self.live = None
        self.run = self.client.json("GET", f"/api/v1/runs/{self.run['id']}")
        return self.run, after


def exit_code(run: dict[str, Any]) -> int:
    """0 no changes or applied, 2 planned and waiting for confirmation, 1 anything else."""
    if run["stage"] in ("applied", "planned_and_finished"):
        return 0
    if run["stage"] == "planned":
        return 2
    return 1


def _report(run: dict[str, Any], *, hint: bool = True) -> None:
    stage, summary, run_id = run["stage"], summary_text(run), run["id"]
    if stage == "applied":
        err.print(f"{_label(run)} applied" + (f": {summary}" if summary else ""), highlight=False)
        for name, output in sorted((run.get("outputs") or {}).items()):
            value = "(sensitive)" if output.get("sensitive") else json.dumps(output.get("value"))
            typer.echo(f"{name} = {value}", err=True)
    elif stage == "planned_and_finished":
        err.print(
            f"{_label(run)} finished: "
            + (summary if summary and run.get("has_changes") else "no changes; the infrastructure matches"),
            highlight=False,
        )
    elif stage == "planned":
        err.print(
            f"{_label(run)} planned: {summary or 'changes'}"
            + (
                f". Apply it with `xcf run confirm {run_id}`, or drop it with `xcf run discard {run_id}`"
                if hint
                else ""
            ),
            highlight=False,
        )
    elif stage in ("errored", "canceled", "discarded"):
        err.print(
            f"[red]error:[/red] {_label(run)} {stage}" + (f": {run['error']}" if run.get("error") else ""),
            highlight=False,
        )
    else:
        err.print(f"{_label(run)} is {stage}", highlight=False)


def _finish(run: dict[str, Any], output: Format) -> NoReturn:
    if output is Format.json:
        emit(run, output)
    _report(run)
    raise typer.Exit(exit_code(run))


def _started(run: dict[str, Any], output: Format, no_wait: bool) -> None:
    if no_wait:
        if output is Format.json:
            emit(run, output)
        else:
            typer.echo(run["id"])
            err.print(
                f"{_label(run)} is {run['stage']}: `xcf run logs --follow {run['id']}` follows it",
                highlight=False,
            )
        return
    where = f" ({run['queue_position']} ahead)" if run.get("queue_position") else ""
    err.print(f"{_label(run)} started: {run['id']} ({run['stage']}{where})", highlight=False)


def _create(client: Client, address: str, body: dict[str, Any]) -> dict[str, Any]:
    created: dict[str, Any] = client.json("POST", workspace_path(address) + "/runs", json=body)
    return created


# ---------------------------------------------------------------- commands


@run_app.command("plan")
def run_plan(
    ctx: typer.Context,
    address: str = ADDRESS,
    destroy: bool = typer.Option(False, "--destroy", help="Plan destroying everything."),
    refresh_only: bool = typer.Option(False, "--refresh-only", help="Only refresh the state from reality."),
    targets: list[str] = TARGETS,
    message: str = typer.Option(None, "--message", "-m"),
    no_wait: bool = typer.Option(False, "--no-wait", help="Print the run's ID and return."),
    output: Format = OUTPUT,
) -> None:
    """Plan; exit 0 no changes, 2 changes waiting for `xcf run confirm`, 1 failed."""
    if destroy and refresh_only:
        raise typer.BadParameter("--destroy and --refresh-only exclude each other")
    kind = "destroy" if destroy else "refresh_only" if refresh_only else "plan"
    client = _client(ctx)
    run = _create(client, address, {"kind": kind, "message": message, "targets": targets or []})
    _started(run, output, no_wait)
    if no_wait:
        return
    run, _ = _Follower(client, run, logs_to_stderr=output is Format.json).follow()
    _finish(run, output)


@run_app.command("apply")
def run_apply(
    ctx: typer.Context,
    address: str = ADDRESS,
    auto_approve: bool = typer.Option(False, "--auto-approve", help="Apply the plan without asking."),
    destroy: bool = typer.Option(False, "--destroy", help="Destroy everything."),
    targets: list[str] = TARGETS,
    message: str = typer.Option(None, "--message", "-m"),
    output: Format = OUTPUT,
) -> None:
    """Plan and apply; asks before applying unless --auto-approve (exit 2 when it cannot ask)."""
    client = _client(ctx)
    kind = "destroy" if destroy else "plan_and_apply"
    run = _create(client, address, {"kind": kind, "message": message, "targets": targets or []})
    _started(run, output, False)
    follower = _Follower(client, run, logs_to_stderr=output is Format.json)
    run, cursor = follower.follow()
    if run["stage"] == "planned":
        if not auto_approve:
            if not sys.stdin.isatty():
                _finish(run, output)  # exit 2 with the `xcf run confirm` hint
            _report(run, hint=False)
            if not typer.confirm("Apply these changes?", err=True):
                run = client.json("POST", f"/api/v1/runs/{run['id']}/discard")
                _finish(run, output)
        client.json("POST", f"/api/v1/runs/{run['id']}/confirm")
        run, _ = follower.follow(cursor or "apply:0")
    _finish(run, output)


@run_app.command("confirm")
def run_confirm(
    ctx: typer.Context,
    run_id: str = RUN_ID,
    no_wait: bool = typer.Option(False, "--no-wait", help="Return once the apply is queued."),
    output: Format = OUTPUT,
) -> None:
    """Apply a planned run's saved plan and follow the apply (refused when the state moved since)."""
    client = _client(ctx)
    run = client.json("POST", f"/api/v1/runs/{run_id_of(client, run_id)}/confirm")
    if no_wait:
        if output is Format.json:
            emit(run, output)
        else:
            typer.echo(f"{_label(run)} {run['stage']}")
        return
    run, _ = _Follower(client, run, logs_to_stderr=output is Format.json).follow("apply:0")
    _finish(run, output)


def _act(ctx: typer.Context, run_id: str, action: str, output: Format) -> None:
    client = _client(ctx)
    run = client.json("POST", f"/api/v1/runs/{run_id_of(client, run_id)}/{action}")
    if output is Format.json:
        emit(run, output)
        return
    typer.echo(f"{_label(run)}: {run['stage']}")


@run_app.command("discard")
def run_discard(ctx: typer.Context, run_id: str = RUN_ID, output: Format = OUTPUT) -> None:
    """Drop a planned run without applying it."""
    _act(ctx, run_id, "discard", output)


@run_app.command("cancel")
def run_cancel(ctx: typer.Context, run_id: str = RUN_ID, output: Format = OUTPUT) -> None:
    """Cancel a run (a running Terraform is interrupted gracefully)."""
    _act(ctx, run_id, "cancel", output)


@run_app.command("show")
def run_show(ctx: typer.Context, run_id: str = RUN_ID, output: Format = OUTPUT) -> None:
    """Show a run: stage, plan summary, error, history."""
    client = _client(ctx)
    run = client.json("GET", f"/api/v1/runs/{run_id_of(client, run_id)}")
    if output is Format.json:
        emit(run, output)
        return
    transitions = run.pop("transitions", None) or []
    outputs = run.pop("outputs", None) or {}
    run["summary"] = summary_text(run) or None
    emit_record(run, output)
    for t in transitions:
        typer.echo(
            f"{t.get('at')}  {t.get('from') or '-'} -> {t.get('to')}  {t.get('actor') or ''}"
            + (f"  ({t['reason']})" if t.get("reason") else "")
        )
    for name, out in sorted(outputs.items()):
        value = "(sensitive)" if out.get("sensitive") else json.dumps(out.get("value"))
        typer.echo(f"{name} = {value}")


@run_app.command("list")
def run_list(
    ctx: typer.Context,
    address: str = typer.Argument(None, metavar="PROJECT/NAME", help="Only this workspace's runs."),
    stage: str = typer.Option(None, "--stage", help="Only runs in this stage."),
    limit: int = typer.Option(20, "--limit", min=1, help="At most this many, newest first."),
    output: Format = OUTPUT,
) -> None:
    """List runs, newest first (the table fits wide terminals; scripts use `-o json`)."""
    client = _client(ctx)
    path = workspace_path(address) + "/runs" if address else "/api/v1/runs"
    params: dict[str, Any] = {"limit": min(limit, 500), **({"stage": stage} if stage else {})}
    items: list[dict[str, Any]] = []
    while len(items) < limit:
        page = client.json("GET", path, params=params)
        items.extend(page["items"])
        if not page.get("next_cursor"):
            break
        params["cursor"] = page["next_cursor"]
    items = items[:limit]
    if output is Format.json:
        emit(items, output)
        return
    from rich import box
    from rich.table import Table

    from xcloudflow.cli.output import print_table

    table = Table("id", "#", "workspace", "kind", "stage", "changes", "created", box=box.SIMPLE_HEAD)
    table.columns[0].no_wrap = True  # the ID is what the other commands take: never cut it
    table.columns[0].min_width = 36
    for item in items:
        summary = item.get("summary") or {}
        changes = (
            f"+{summary.get('add', 0)} ~{summary.get('change', 0)} -{summary.get('destroy', 0)}"
            if summary
            else ""
        )
        created = str(item.get("created_at") or "")[:16].replace("T", " ")
        table.add_row(
            item["id"], str(item["number"]), item["workspace"], item["kind"], item["stage"], changes, created
        )
    print_table(table)


@run_app.command("logs")
def run_logs(
    ctx: typer.Context,
    run_id: str = RUN_ID,
    follow: bool = typer.Option(False, "--follow", help="Keep printing until the run stops."),
) -> None:
    """Print a run's log (plan, then apply); with --follow, follow it live."""
    client = _client(ctx)
    run_id = run_id_of(client, run_id)
    if follow:
        run = client.json("GET", f"/api/v1/runs/{run_id}")
        _Follower(client, run, logs_to_stderr=False).follow()
        return
    params: dict[str, Any] = {}
    while True:
        page = client.json("GET", f"/api/v1/runs/{run_id}/logs", params=params)
        for item in page["items"]:
            typer.echo(item["text"], nl=not item["text"].endswith("\n"))
        params["after"] = page["last_cursor"]
        if not page["more"]:
            return
