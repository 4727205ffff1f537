"""`xcf agent` (run an agent), `xcf agent-pool ...`, `xcf agent-token ...` and `xcf job ...`.

All of it goes through HTTP: `xcf agent` uses the agent API with a pool token, the rest the JSON API
with the caller's API token. Heavy imports stay inside the commands so `xcf --help` stays fast.
"""

from __future__ import annotations

import typer

from xcloudflow.cli.client import Client, fail
from xcloudflow.cli.output import Format, emit

pool_app = typer.Typer(help="Agent pools (groups of agents that share jobs).", no_args_is_help=True)
token_app = typer.Typer(help="Agent pool tokens (what agents register with).", no_args_is_help=True)
job_app = typer.Typer(help="Jobs run by agents.", no_args_is_help=True)
OUTPUT = typer.Option(Format.table, "--output", "-o", help="table or json")


def _client(ctx: typer.Context) -> Client:
    return Client(ctx.obj["server"], ctx.obj["token"])


def agent(
    ctx: typer.Context,
    server: str = typer.Option(None, "--server", envvar="XCF_SERVER", help="Server URL."),
    token: str = typer.Option(
        None, "--token", envvar="XCF_AGENT_TOKEN", help="Agent pool token (xcfa_...).", show_default=False
    ),
    pool: str = typer.Option(None, "--pool", help="Expected pool name (checked against the token)."),
    concurrency: int = typer.Option(1, "--concurrency", "-c", min=1, max=64, help="Jobs run at once."),
    name: str = typer.Option(None, "--name", help="Agent name (default agent-<random id>)."),
    poll_wait: float = typer.Option(20.0, "--poll-wait", min=1, max=60, help="Long-poll seconds."),
    token_stdin: bool = typer.Option(
        False,
        "--token-stdin",
        help="Read the pool token from the first line of stdin, and stop when stdin closes "
        "(how `xcf server` runs its embedded agent).",
    ),
) -> None:
    """Run an agent: pull jobs from the server and run them until interrupted (Ctrl-C, SIGTERM)."""
    import logging
    import signal
    import sys
    import threading

    from xcloudflow import logformat
    from xcloudflow.agent import Agent
    from xcloudflow.agent.sandbox import UNSANDBOXED_WARNING, sandbox_mode
    from xcloudflow.engines.sandbox import SandboxUnavailable, check_available

    server = server or (ctx.obj or {}).get("server") or "http://127.0.0.1:8080"
    stop = threading.Event()
    if token_stdin:
        token = sys.stdin.readline().strip()

        def watch_stdin() -> None:  # EOF: whoever started us (the server) is gone
            sys.stdin.read()
            stop.set()

        threading.Thread(target=watch_stdin, name="agent-stdin", daemon=True).start()
    if not token:
        fail("no agent pool token: pass --token or set XCF_AGENT_TOKEN (xcf agent-token create)", 2)
    logformat.configure()
    try:
        mode = sandbox_mode()
    except ValueError as exc:
        fail(str(exc), 2)
    if mode == "none":
        logging.getLogger("xcloudflow.agent").warning(UNSANDBOXED_WARNING)
    else:
        try:
            check_available()
        except SandboxUnavailable as exc:  # jobs will fail with this message: say it at once too
            logging.getLogger("xcloudflow.agent").error("%s", exc.message)
    runner = Agent(server, token, pool=pool, concurrency=concurrency, name=name, poll_wait=poll_wait)
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    thread = runner.start()
    agent_log = logging.getLogger("xcloudflow.agent")
    agent_log.info("agent %s pulling jobs from %s (concurrency %d)", runner.name, server, concurrency)
    while thread.is_alive() and not stop.wait(0.5):
        pass
    if stop.is_set():
        agent_log.info("stopping: running jobs are asked to cancel")
        runner.stop(grace=30.0)
    if runner.error is not None:
        fail(f"agent stopped: {runner.error}")


@pool_app.command("create")
def pool_create(ctx: typer.Context, name: str = typer.Argument(...), output: Format = OUTPUT) -> None:
    """Create an agent pool (admins)."""
    emit(_client(ctx).json("POST", "/api/v1/agent-pools", json={"name": name}), output)


@pool_app.command("list")
def pool_list(ctx: typer.Context, output: Format = OUTPUT) -> None:
    """List agent pools with their online agents."""
    emit(_client(ctx).json("GET", "/api/v1/agent-pools"), output, ["name", "agents_online", "created_at"])


@token_app.command("create")
def agent_token_create(
    ctx: typer.Context,
    pool: str = typer.Option(..., "--pool", help="The pool agents will join."),
    name: str = typer.Option("agent", "--name", help="What the token is for."),
    output: Format = OUTPUT,
) -> None:
    """Create an agent pool token; the secret is printed once."""
    created = _client(ctx).json("POST", f"/api/v1/agent-pools/{pool}/tokens", json={"name": name})
    if output is Format.json:
        emit(created, output)
    else:
        typer.echo(f"agent token {created['id']} ({created['name']}) for pool {created['pool']}:")
        typer.echo(created["token"])
        typer.echo("It is shown only now. Run: xcf agent --server URL --token <it>", err=True)


@token_app.command("list")
def agent_token_list(
    ctx: typer.Context, pool: str = typer.Option(..., "--pool"), output: Format = OUTPUT
) -> None:
    """List a pool's tokens (never the secrets)."""
    emit(
        _client(ctx).json("GET", f"/api/v1/agent-pools/{pool}/tokens"),
        output,
        ["id", "name", "prefix", "created_at", "last_used_at", "revoked_at"],
    )


@token_app.command("revoke")
def agent_token_revoke(
    ctx: typer.Context,
    token_id: int = typer.Argument(...),
    pool: str = typer.Option(..., "--pool"),
    output: Format = OUTPUT,
) -> None:
    """Revoke a pool token; agents registered with it are cut off."""
    revoked = _client(ctx).json("DELETE", f"/api/v1/agent-pools/{pool}/tokens/{token_id}")
    if output is Format.json:
        emit(revoked, output)
        return
    typer.echo(f"agent token {revoked['id']} revoked at {revoked['revoked_at']}")


@job_app.command("list")
def job_list(
    ctx: typer.Context,
    status: str = typer.Option(None, help="queued, claimed, running, succeeded, failed, canceled, errored"),
    kind: str = typer.Option(None),
    pool: str = typer.Option(None),
    limit: int = typer.Option(50),
    output: Format = OUTPUT,
) -> None:
    """List jobs, newest first."""
    params = {k: v for k, v in {"status": status, "kind": kind, "pool": pool, "limit": limit}.items() if v}
    page = _client(ctx).json("GET", "/api/v1/jobs", params=params)
    emit(
        page["items"], output, ["id", "kind", "pool", "status", "agent", "created_at", "finished_at", "error"]
    )


def _job_id(client: Client, given: str) -> str:
    """A job's full ID from the full ID or a unique prefix of it (like git)."""
    return client.resolve_id(given, "job", "/api/v1/jobs", {"limit": 500})


@job_app.command("show")
def job_show(ctx: typer.Context, job_id: str = typer.Argument(...), output: Format = OUTPUT) -> None:
    """Show one job with its result (JOB_ID: the full ID or a unique prefix)."""
    client = _client(ctx)
    emit(client.json("GET", f"/api/v1/jobs/{_job_id(client, job_id)}"), output)


@job_app.command("logs")
def job_logs(ctx: typer.Context, job_id: str = typer.Argument(...)) -> None:
    """Print a job's log (JOB_ID: the full ID or a unique prefix)."""
    client = _client(ctx)
    job_id = _job_id(client, job_id)
    after = 0
    while True:
        page = client.json("GET", f"/api/v1/jobs/{job_id}/logs", params={"after": after})
        for item in page["items"]:
            typer.echo(item["text"], nl=False)
        after = page["last_seq"]
        if not page["more"]:
            return


@job_app.command("cancel")
def job_cancel(ctx: typer.Context, job_id: str = typer.Argument(...), output: Format = OUTPUT) -> None:
    """Cancel a queued job, or ask its agent to stop it (JOB_ID: the full ID or a unique prefix)."""
    client = _client(ctx)
    job = client.json("POST", f"/api/v1/jobs/{_job_id(client, job_id)}/cancel")
    if output is Format.json:
        emit(job, output)
        return
    typer.echo(f"job {job['id']}: {job['status']} (cancel requested at {job['cancel_requested_at']})")


@job_app.command("diagnose")
def job_diagnose(
    ctx: typer.Context,
    pool: str = typer.Option("embedded", "--pool"),
    wait: float = typer.Option(120.0, "--wait", help="Seconds to wait for the result (0: don't wait)."),
    output: Format = OUTPUT,
) -> None:
    """Queue `agent.diagnose` on a pool (admins) and print what the agent reports."""
    import time

    client = _client(ctx)
    job = client.json("POST", "/api/v1/jobs", json={"kind": "agent.diagnose", "pool": pool})
    deadline = time.monotonic() + wait
    while job["status"] in ("queued", "claimed", "running") and time.monotonic() < deadline:
        time.sleep(0.5)
        job = client.json("GET", f"/api/v1/jobs/{job['id']}")
    emit(job, Format.json if output is Format.json else output, ["id", "status", "agent", "result", "error"])
    if job["status"] != "succeeded":
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.command("agent")(agent)
    app.add_typer(pool_app, name="agent-pool")
    app.add_typer(token_app, name="agent-token")
    app.add_typer(job_app, name="job")
