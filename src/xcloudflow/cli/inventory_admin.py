"""Server-side inventory commands (they work on the database): `xcf inventory rebuild|worker`."""

from __future__ import annotations

import typer

from xcloudflow.cli.client import fail


def rebuild(
    stack: str = typer.Option(None, "--stack", help="Only this stack, as TOOL/PROJECT/STACK."),
    org: str = typer.Option("default", "--org", help="Organization name."),
) -> None:
    """Empty the inventory projections and replay every stored state version."""
    from xcloudflow.db import Database
    from xcloudflow.errors import DomainError
    from xcloudflow.iam.service import org_id_by_name
    from xcloudflow.inventory import service as inventory
    from xcloudflow.keys.keyring import Keyring
    from xcloudflow.settings import Settings
    from xcloudflow.state.documents import StackRef

    settings = Settings()
    try:
        ref = None
        if stack:
            parts = stack.split("/")
            if len(parts) != 3:
                fail("--stack is TOOL/PROJECT/STACK, e.g. terraform/net/prod", 2)
            ref = StackRef.parse(*parts)
        keyring = Keyring.from_settings(settings, create=False)
        db = Database(settings.resolved_database_url)
        with db.write() as session:
            events = inventory.rebuild(
                session=session, keyring=keyring, org_id=org_id_by_name(session=session, name=org), ref=ref
            )
    except DomainError as exc:
        fail(exc.message)
    typer.echo(f"rebuilt the inventory{' of ' + stack if stack else ''}: {events} events")


def worker(
    poll: float = typer.Option(2.0, help="Seconds between outbox polls (PostgreSQL also wakes on NOTIFY)."),
    once: bool = typer.Option(False, "--once", help="Process what is pending now, then exit."),
) -> None:
    """Run the inventory consumer alone (`xcf server` runs one too; several are safe together)."""
    import signal

    from xcloudflow.db import Database
    from xcloudflow.inventory.worker import InventoryWorker
    from xcloudflow.keys.keyring import Keyring
    from xcloudflow.settings import Settings

    settings = Settings()
    consumer = InventoryWorker(
        Database(settings.resolved_database_url),
        Keyring.from_settings(settings, create=False),
        poll_seconds=poll,
        # --once drains everything now; the long-running worker leaves stacks mid-operation for later.
        defer_locked_seconds=0 if once else settings.inventory_defer_locked_seconds,
    )
    if once:
        typer.echo(f"{consumer.run_once()} events written")
        return
    signal.signal(signal.SIGTERM, lambda *_: consumer.stop.set())
    typer.echo("inventory worker running; Ctrl-C to stop", err=True)
    try:
        consumer.run_forever()
    except KeyboardInterrupt:
        consumer.stop.set()


def register(app: typer.Typer) -> None:
    app.command("rebuild")(rebuild)
    app.command("worker")(worker)
