"""Server-side commands that work on the database directly: server, db, keys, org."""

from __future__ import annotations

import typer

from xcloudflow.cli.client import fail

db_app = typer.Typer(help="Database migrations.", no_args_is_help=True)
keys_app = typer.Typer(help="Encryption keys.", no_args_is_help=True)
org_app = typer.Typer(help="Organizations (server-side: works on the database).", no_args_is_help=True)


def server(
    host: str = typer.Option(None, help="Address to listen on (XCF_HOST, default 127.0.0.1)."),
    port: int = typer.Option(None, help="Port (XCF_PORT, default 8080)."),
    workers: int = typer.Option(None, help="Worker processes (XCF_WORKERS, default 1)."),
    no_agent: bool = typer.Option(False, "--no-agent", help="Do not start the embedded agent."),
) -> None:
    """Migrate the database, then serve the API, the Terraform backend and /metrics."""
    import logging
    import os
    import tempfile

    import uvicorn

    from xcloudflow.server import logs
    from xcloudflow.server.app import create_app, prepare
    from xcloudflow.server.http import uvicorn_options
    from xcloudflow.settings import Settings

    settings = Settings()
    logs.configure(settings.log_level)  # timestamps from the first line on; uvicorn gets the same
    log = logging.getLogger("xcloudflow.server")
    host = host or settings.host
    port = port or settings.port
    workers = workers or settings.workers
    # Worker processes (and the embedded agent, which calls this server) read these.
    os.environ["XCF_HOST"], os.environ["XCF_PORT"] = host, str(port)
    if no_agent:
        os.environ["XCF_EMBEDDED_AGENT"] = "false"
    settings = Settings()
    generated = prepare(settings)
    if generated:
        log.warning(
            "created the admin user; its API token is shown once, keep it now (use it as XCF_TOKEN for "
            "the CLI, or as the Terraform backend password): %s",
            generated,
        )
    log.info(
        "xcf server on http://%s:%s (database %s)", host, port, settings.resolved_database_url.split("@")[-1]
    )
    if workers > 1:
        os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR", tempfile.mkdtemp(prefix="xcf-metrics-"))
        uvicorn.run(
            "xcloudflow.server.app:app_from_env",
            factory=True,
            host=host,
            port=port,
            workers=workers,
            log_level=settings.log_level,
            log_config=logs.config(settings.log_level),
            **uvicorn_options(settings),
        )
    else:
        uvicorn.run(
            create_app(settings),
            host=host,
            port=port,
            log_level=settings.log_level,
            log_config=logs.config(settings.log_level),
            **uvicorn_options(settings),
        )


@db_app.command("upgrade")
def db_upgrade(revision: str = typer.Argument("head")) -> None:
    """Apply migrations up to REVISION (default head)."""
    from xcloudflow.db import Database, migrate
    from xcloudflow.settings import Settings

    db = Database(Settings().resolved_database_url)
    migrate.upgrade(db, revision)
    typer.echo(f"database at {migrate.current_revision(db)}")


@db_app.command("current")
def db_current() -> None:
    """Show the database's migration and the code's head."""
    from xcloudflow.db import Database, migrate
    from xcloudflow.settings import Settings

    db = Database(Settings().resolved_database_url)
    typer.echo(f"current {migrate.current_revision(db)}; head {migrate.head_revision()}")


@keys_app.command("rotate")
def keys_rotate(
    generate: bool = typer.Option(False, "--generate", help="Generate a new master key into the key file."),
    new_key: str = typer.Option(
        None, "--new-key", envvar="XCF_NEW_ENCRYPTION_KEY", help="The new master key (base64 of 32 bytes)."
    ),
    data_keys: bool = typer.Option(
        False, "--data-keys", help="Also start new data key versions per organization."
    ),
) -> None:
    """Re-wrap every organization's data keys with a new (or the current) master key.

    With --generate or --new-key while the key file is in use, the file gets the new key and the old
    key is kept beside it as master.key.old-<id> until you remove it. With XCF_ENCRYPTION_KEY, set it to
    the new key afterwards and pass the old one in XCF_ENCRYPTION_OLD_KEYS until rotation is done.
    """
    import os

    from xcloudflow.db import Database
    from xcloudflow.errors import DomainError
    from xcloudflow.iam.service import list_org_ids
    from xcloudflow.keys import service as keys
    from xcloudflow.keys.keyring import Keyring, decode_key, encode_key, key_id, write_key_file
    from xcloudflow.settings import Settings

    settings = Settings()
    try:
        keyring = Keyring.from_settings(settings, create=False)
        fresh = None
        if generate or new_key:
            fresh = os.urandom(32) if generate else decode_key(new_key, source="--new-key")
            keyring = Keyring(fresh, [*keyring.by_id.values()])
        db = Database(settings.resolved_database_url)
        with db.write() as session:
            changed = keys.rotate_master(session=session, keyring=keyring)
            if data_keys:
                for org_id in list_org_ids(session=session):
                    keys.rotate_data_key(session=session, keyring=keyring, org_id=org_id)
        if fresh is not None:
            if settings.encryption_key is None:
                old = settings.key_file.read_text()
                old_id = key_id(decode_key(old, source=str(settings.key_file)))
                write_key_file(
                    settings.key_file.with_name(f"{settings.key_file.name}.old-{old_id}"),
                    decode_key(old, source="old key"),
                )
                write_key_file(settings.key_file, fresh)
                typer.echo(f"new master key {key_id(fresh)} written to {settings.key_file}")
            else:
                typer.echo("set XCF_ENCRYPTION_KEY to the new key now:\n" + encode_key(fresh))
        typer.echo(f"re-wrapped {changed} data keys under master key {keyring.current_id}")
    except DomainError as exc:
        fail(exc.message)


@keys_app.command("status")
def keys_status() -> None:
    """Show which master key wraps how many data keys."""
    from xcloudflow.db import Database
    from xcloudflow.keys import service as keys
    from xcloudflow.keys.keyring import Keyring
    from xcloudflow.settings import Settings

    settings = Settings()
    keyring = Keyring.from_settings(settings, create=False)
    with Database(settings.resolved_database_url).read() as session:
        usage = keys.master_key_usage(session=session)
    typer.echo(f"current master key {keyring.current_id}")
    for mk, n in sorted(usage.items()):
        typer.echo(f"  {mk}: {n} data keys{' (current)' if mk == keyring.current_id else ''}")


@org_app.command("create")
def org_create(
    name: str = typer.Argument(..., help="Organization name."),
    admin: str = typer.Option(..., "--admin", help="Its first admin user (created if new)."),
) -> None:
    """Create an organization and its first admin; prints the admin's token once."""
    import re

    from xcloudflow.audit.schemas import AuditContext
    from xcloudflow.db import Database
    from xcloudflow.errors import DomainError
    from xcloudflow.iam import service as iam
    from xcloudflow.iam.schemas import NAME_PATTERN
    from xcloudflow.settings import Settings

    for value, what in ((name, "organization name"), (admin, "--admin")):
        if not re.match(NAME_PATTERN, value):
            fail(f"{what} {value!r} is not a valid name (letters, digits, '.', '_', '@', '-')", 2)
    db = Database(Settings().resolved_database_url)
    try:
        with db.write() as session:
            token = iam.create_organization(
                session=session, ctx=AuditContext(actor="cli", org_id=None), name=name, admin_name=admin
            )
    except DomainError as exc:
        fail(exc.message)
    typer.echo(f"organization {name} created; token of {admin} (shown once):\n{token}")


def register(app: typer.Typer) -> None:
    app.command("server")(server)
    app.add_typer(db_app, name="db")
    app.add_typer(keys_app, name="keys")
    app.add_typer(org_app, name="org")
