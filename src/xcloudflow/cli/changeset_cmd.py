"""`xcf compose plan|apply|status|approve|reject|override|discard|rollback|list|targets`: ChangeSets on a server.

The server reads the repository (a git URL, or a path on the server's machine under
XCF_COMPOSE_LOCAL_ROOTS) at one commit; a relative `--repo` path is made absolute here. `plan` and
`apply --repo` wait for the ChangeSet to settle unless `--no-wait`; exit codes: 0 planned/applied
(no changes or done), 2 waiting for people (approval, a blocking policy), 1 failed. Only HTTP.
"""

from __future__ import annotations

import json
import os
import time
from typing import Any

import typer

from xcloudflow.cli.client import Client, err, fail
from xcloudflow.cli.output import Format, emit

OUTPUT = typer.Option(Format.table, "--output", "-o", help="table or json")
SHOW = typer.Option("table", "--output", "-o", "--format", help="table, json (the ChangeSet) or markdown")
CHANGESET = typer.Argument(
    ..., metavar="CHANGESET", help="The ChangeSet's ID or a unique prefix of it (shown by plan and list)."
)
REPO = typer.Option(
    None, "--repo", "-r", help="Repository: git URL, or a path (made absolute) the server may read."
)
ENV = typer.Option(None, "--env", "-e", help="Environment name (envs/<name>).")
REF = typer.Option(None, "--ref", help="Branch, tag or commit (default: HEAD).")
WAIT = typer.Option(True, "--wait/--no-wait", help="Wait until the ChangeSet settles.")
TIMEOUT = typer.Option(1800.0, "--timeout", help="Seconds to wait at most.")
SETTLED = ("planned", "blocked", "applied", "failed", "rejected", "discarded", "rolled_back")
APPLY_SETTLED = ("applied", "failed", "rejected", "discarded", "rolled_back", "blocked")


def _client(ctx: typer.Context) -> Client:
    return Client(ctx.obj["server"], ctx.obj["token"])


def changeset_id(client: Client, given: str) -> str:
    """The full ID of CHANGESET (an ID, or a unique prefix such as the 8 characters Markdown shows)."""
    return client.resolve_id(given, "ChangeSet", "/api/v1/compose/changesets", {"limit": 200})


def _format(fmt: str, allowed: tuple[str, ...] = ("table", "json", "markdown")) -> str:
    if fmt not in allowed:
        fail(f"--output must be {', '.join(allowed[:-1])} or {allowed[-1]}", 2)
    return fmt


def _repo(repo: str) -> str:
    if "://" in repo or repo.startswith("git@") or os.path.isabs(repo):
        return repo
    return os.path.abspath(repo)


def _create(client: Client, repo: str, env: str, ref: str | None, apply: bool) -> dict[str, Any]:
    body = {"repo": _repo(repo), "environment": env, "ref": ref, "apply": apply}
    resp = client.request("POST", "/api/v1/compose/changesets", json=body, ok=(201, 400, 409, 422))
    if resp.status_code != 201:
        try:
            error = resp.json()["error"]
        except (ValueError, KeyError, TypeError):
            fail(f"{resp.status_code} {resp.text[:500]}")
        issues = (
            (error.get("details") or {}).get("issues") if isinstance(error.get("details"), dict) else None
        )
        if issues:
            for issue in issues:
                where = ":".join(str(x) for x in (issue.get("file"), issue.get("line")) if x)
                field = f" {issue['field']}:" if issue.get("field") else ""
                err.print(f"{where}:{field} {issue.get('message')}", highlight=False, markup=False)
            raise typer.Exit(1)
        fail(error.get("message") or str(error))
    data: dict[str, Any] = resp.json()
    return data


def _wait(client: Client, cs: dict[str, Any], settled: tuple[str, ...], timeout: float) -> dict[str, Any]:
    """Poll until the ChangeSet reaches `settled`, or only people can move it on (an approval is
    awaited and nothing runs, twice in a row: a node freed by the last tick may just be starting)."""
    deadline = time.monotonic() + timeout
    seen, idle = "", 0
    while cs["status"] not in settled:
        running = any(n["status"] in ("backing_up", "applying", "observing", "planning") for n in cs["nodes"])
        idle = idle + 1 if _awaiting(cs) and not running else 0
        if idle >= 2:
            break
        line = f"{cs['status']}: " + ", ".join(f"{n['key']}={n['status']}" for n in cs["nodes"])
        if line != seen:
            err.print(line, highlight=False, markup=False)
            seen = line
        if time.monotonic() > deadline:
            fail(f"changeset {cs['id']} is still {cs['status']} after {timeout:.0f}s")
        time.sleep(1.0)
        cs = client.json("GET", f"/api/v1/compose/changesets/{cs['id']}")
    return cs


def _awaiting(cs: dict[str, Any]) -> list[str]:
    return [n["key"] for n in cs["nodes"] if n["status"] == "awaiting_approval"]


def _exit_code(cs: dict[str, Any]) -> int:
    if cs["status"] in ("failed", "rejected", "discarded"):
        return 1
    if cs["status"] == "blocked" or _awaiting(cs):
        return 2
    if cs["status"] == "planned" and (cs.get("summary") or {}).get("with_changes"):
        return 2
    return 0


def _changing(cs: dict[str, Any]) -> int:
    """The nodes a rollback changes: not the ones it skips (nothing to return to)."""
    return sum(1 for n in cs["nodes"] if not (n["status"] == "applied" and n.get("error")))


def _note(node: dict[str, Any], changeset_error: str) -> str:
    error = node.get("error") or ""
    if error and error in changeset_error:
        error = ""  # the ChangeSet's error quotes it: printed once, below the table
    return str(error or node.get("waiting_for") or "")


def _show(client: Client, cs: dict[str, Any], fmt: str) -> None:
    if fmt == "markdown":
        typer.echo(client.request("GET", f"/api/v1/compose/changesets/{cs['id']}/markdown").text)
        return
    if fmt == "json":
        typer.echo(json.dumps(cs, indent=2, default=str))
        return
    summary = cs.get("summary") or {}
    if cs["kind"] == "rollback":
        changing = _changing(cs)
        skipped = len(cs["nodes"]) - changing
        totals = f"rolls back {changing} node(s) of changeset {cs.get('rollback_of')}" + (
            f" ({skipped} with nothing to return to)" if skipped else ""
        )
    else:
        totals = f"+{summary.get('add', 0)} ~{summary.get('change', 0)} -{summary.get('destroy', 0)}"
    typer.echo(
        f"changeset {cs['id']} ({cs['kind']}) of {cs['environment']} at {(cs.get('commit') or '')[:12]}: "
        f"{cs['status']}; {totals}"
    )
    rows = []
    for n in cs["nodes"]:
        plan = n.get("plan") or {}
        counts = plan.get("summary") or {}
        denied = [m for o in n.get("policy") or [] for m in o.get("deny") or []]
        warned = [m for o in n.get("policy") or [] for m in o.get("warn") or []]
        rows.append(
            {
                "node": n["key"],
                "engine": n["engine"],
                "layer": n["layer"],
                "status": n["status"],
                "changes": f"+{counts.get('add', 0)} ~{counts.get('change', 0)} -{counts.get('destroy', 0)}"
                if plan
                else "",
                "policy": "; ".join([f"deny: {m}" for m in denied] + [f"warn: {m}" for m in warned]),
                "note": _note(n, cs.get("error") or ""),
            }
        )
    emit(rows, Format.table, ["node", "engine", "layer", "status", "changes", "policy", "note"])
    if cs.get("error"):
        err.print(cs["error"], style="red", highlight=False, markup=False)


def register(app: typer.Typer) -> None:
    """Add the server-side commands to the `xcf compose` app."""

    @app.command("plan")
    def plan(
        ctx: typer.Context,
        repo: str = typer.Option(
            ..., "--repo", "-r", help="Repository: git URL or path the server may read."
        ),
        env: str = typer.Option(..., "--env", "-e", help="Environment name (envs/<name>)."),
        ref: str | None = REF,
        fmt: str = SHOW,
        wait: bool = WAIT,
        timeout: float = TIMEOUT,
    ) -> None:
        """Plan an environment at one commit as a ChangeSet; `xcf compose apply CHANGESET` applies exactly it."""
        _format(fmt)
        client = _client(ctx)
        cs = _create(client, repo, env, ref, apply=False)
        if wait:
            cs = _wait(client, cs, SETTLED, timeout)
        _show(client, cs, fmt)
        if cs["status"] in ("planned", "blocked"):
            err.print(
                f"changeset {cs['id']}: `xcf compose apply {cs['id']}` applies this plan", highlight=False
            )
        raise typer.Exit(_exit_code(cs) if wait else 0)

    @app.command("apply")
    def apply(
        ctx: typer.Context,
        changeset: str | None = typer.Argument(
            None, metavar="CHANGESET", help="Apply this planned ChangeSet (its saved plans, no new plan)."
        ),
        repo: str | None = REPO,
        env: str | None = ENV,
        ref: str | None = REF,
        fmt: str = SHOW,
        wait: bool = WAIT,
        timeout: float = TIMEOUT,
    ) -> None:
        """Apply a planned ChangeSet, or plan and apply `--repo/--env` in one go (approvals still apply)."""
        _format(fmt)
        client = _client(ctx)
        if changeset and (repo or env):
            fail("give a CHANGESET (to apply its plan), or --repo and --env (to plan and apply), not both", 2)
        if changeset:
            cs = client.json("POST", f"/api/v1/compose/changesets/{changeset_id(client, changeset)}/apply")
        elif repo and env:
            cs = _create(client, repo, env, ref, apply=True)
        else:
            fail("give a CHANGESET, or --repo and --env", 2)
        if wait:
            cs = _wait(client, cs, APPLY_SETTLED, timeout)
        _show(client, cs, fmt)
        raise typer.Exit(_exit_code(cs) if wait else 0)

    @app.command("status")
    def status(
        ctx: typer.Context,
        changeset: str | None = typer.Argument(None, metavar="CHANGESET", help="ID or unique prefix."),
        env: str | None = ENV,
        fmt: str = SHOW,
    ) -> None:
        """A ChangeSet's nodes and verdicts; with --env only, what runs in the environment (targets)."""
        client = _client(ctx)
        if changeset:
            _format(fmt)
            cs = client.json("GET", f"/api/v1/compose/changesets/{changeset_id(client, changeset)}")
            _show(client, cs, fmt)
            return
        _format(fmt, ("table", "json"))
        if not env:
            fail("give a CHANGESET or --env", 2)
        targets = client.json("GET", "/api/v1/compose/targets", params={"environment": env})
        emit(
            [
                {
                    "node": t["key"],
                    "engine": t["engine"],
                    "layer": t["layer"],
                    "status": t["status"],
                    "changeset": t["changeset"],
                    "applied": t["applied_at"],
                    "next check": t["next_check_at"] or "",
                    "drifted": t["drifted_at"] or "",
                    "expires": t["expires_at"] or "",
                }
                for t in targets
            ],
            Format.json if fmt == "json" else Format.table,
            ["node", "engine", "layer", "status", "changeset", "applied", "drifted", "expires"],
        )

    @app.command("list")
    def list_(ctx: typer.Context, env: str | None = ENV, output: Format = OUTPUT) -> None:
        """Recent ChangeSets, newest first."""
        page = _client(ctx).json(
            "GET", "/api/v1/compose/changesets", params={"environment": env} if env else {}
        )
        emit(
            page["items"],
            output,
            ["id", "environment", "kind", "status", "commit", "created_at", "created_by"],
        )

    @app.command("approve")
    def approve(
        ctx: typer.Context,
        changeset: str = CHANGESET,
        reason: str | None = typer.Option(None, "--reason", help="Why (audited)."),
        node: list[str] | None = typer.Option(None, "--node", help="Approve only this node (repeatable)."),
        wait: bool = typer.Option(
            False, "--wait/--no-wait", help="Wait until the ChangeSet settles or waits for people again."
        ),
        timeout: float = TIMEOUT,
        fmt: str = SHOW,
    ) -> None:
        """Approve the nodes awaiting approval (all, or --node ones); exit codes with --wait as `apply`."""
        _format(fmt)
        client = _client(ctx)
        cs = client.json(
            "POST",
            f"/api/v1/compose/changesets/{changeset_id(client, changeset)}/approve",
            json={"reason": reason, "nodes": node or None},
        )
        if wait:
            cs = _wait(client, cs, APPLY_SETTLED if cs["apply_requested"] else SETTLED, timeout)
        _show(client, cs, fmt)
        if wait:
            raise typer.Exit(_exit_code(cs))

    def _decision(ctx: typer.Context, changeset: str, verb: str, reason: str | None, fmt: str) -> None:
        _format(fmt)
        client = _client(ctx)
        body = {"reason": reason} if reason else None
        cs = client.json(
            "POST", f"/api/v1/compose/changesets/{changeset_id(client, changeset)}/{verb}", json=body
        )
        _show(client, cs, fmt)

    @app.command("reject")
    def reject(
        ctx: typer.Context,
        changeset: str = CHANGESET,
        reason: str = typer.Option(..., "--reason", help="Why (audited)."),
        fmt: str = SHOW,
    ) -> None:
        """Reject the ChangeSet: nothing more of it is applied; its planned runs are discarded."""
        _decision(ctx, changeset, "reject", reason, fmt)

    @app.command("override")
    def override(
        ctx: typer.Context,
        changeset: str = CHANGESET,
        reason: str = typer.Option(..., "--reason", help="Why the policy is overridden (audited)."),
        fmt: str = SHOW,
    ) -> None:
        """Let a ChangeSet blocked by a mandatory policy go on (admins only)."""
        _decision(ctx, changeset, "override", reason, fmt)

    @app.command("discard")
    def discard(ctx: typer.Context, changeset: str = CHANGESET, fmt: str = SHOW) -> None:
        """Drop a ChangeSet that is not applying yet."""
        _decision(ctx, changeset, "discard", None, fmt)

    @app.command("check")
    def check(
        ctx: typer.Context,
        env: str = typer.Option(..., "--env", "-e", help="Environment name."),
        node: list[str] | None = typer.Option(None, "--node", help="Only this node (repeatable)."),
        output: Format = OUTPUT,
    ) -> None:
        """Check the environment's applied nodes for drift now; their drift policy then acts."""
        targets = _client(ctx).json(
            "POST", "/api/v1/compose/targets/check", json={"environment": env, "keys": node or None}
        )
        emit(targets, output, ["key", "engine", "layer", "next_check_at", "drifted_at"])

    @app.command("rollback")
    def rollback(
        ctx: typer.Context,
        changeset: str = CHANGESET,
        reason: str | None = typer.Option(None, "--reason", help="Why (audited)."),
        wait: bool = WAIT,
        timeout: float = TIMEOUT,
        fmt: str = SHOW,
    ) -> None:
        """Return every node the ChangeSet changed to its pre-change version, in reverse DAG order."""
        _format(fmt)
        client = _client(ctx)
        cs = client.json(
            "POST",
            f"/api/v1/compose/changesets/{changeset_id(client, changeset)}/rollback",
            json={"reason": reason} if reason else None,
        )
        if wait:
            cs = _wait(client, cs, APPLY_SETTLED, timeout)
        _show(client, cs, fmt)
        raise typer.Exit(_exit_code(cs) if wait else 0)
