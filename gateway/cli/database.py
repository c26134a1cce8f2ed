"""``elimu db``: schema migrations."""

from __future__ import annotations

import click
from alembic.util import CommandError
from sqlalchemy import Engine, inspect, text

from registry.migrate import LOCK_TIMEOUT_MS, MigrationBlocked, downgrade, revisions, upgrade

from . import Context, pass_context
from .errors import DatabaseFailure

_lock_timeout = click.option(
    "--lock-timeout", "lock_timeout_ms", type=click.IntRange(1, 60_000), default=LOCK_TIMEOUT_MS, show_default=True,
    help="PostgreSQL: how long (ms) a statement waits for a lock before the migration gives up and retries; "
         "keep it under the web's ELIMU_DB_STATEMENT_TIMEOUT_MS (live queries queue behind the wait).")


@click.group("db")
def db_group() -> None:
    """Database schema."""


@db_group.command("upgrade")
@_lock_timeout
@pass_context
def db_upgrade(ctx: Context, lock_timeout_ms: int) -> None:
    """Bring the database schema up to date (a schema newer than this code is left as it is)."""
    engine = ctx.runtime.db.engine
    newer = _newer_revision(engine)
    if newer is not None:  # a rollback: the older release runs on the newer schema (and its unit runs this)
        click.echo(f"database schema is at {newer}, newer than this code's {revisions()[-1]}: left as it is "
                   "(see docs/deploy.md, Upgrading)")
        return
    try:
        upgrade(engine, lock_timeout_ms=lock_timeout_ms)
    except MigrationBlocked as exc:
        raise DatabaseFailure(f"schema upgrade blocked: {exc}") from None
    except CommandError as exc:
        raise click.ClickException(f"schema upgrade: {exc}") from None
    click.echo("database schema is up to date")


@db_group.command("downgrade")
@click.argument("revision")
@_lock_timeout
@pass_context
def db_downgrade(ctx: Context, revision: str, lock_timeout_ms: int) -> None:
    """Take the database schema back to REVISION (see docs/deploy.md, Upgrading)."""
    engine = ctx.runtime.db.engine
    newer = _newer_revision(engine)
    if newer is not None:
        raise click.ClickException(f"the schema is at {newer}, which this code does not know: run the downgrade "
                                   "with the release that made it, before installing this one (docs/deploy.md, "
                                   "Upgrading)")
    try:
        downgrade(engine, revision, lock_timeout_ms=lock_timeout_ms)
    except MigrationBlocked as exc:
        raise DatabaseFailure(f"schema downgrade blocked: {exc}") from None
    except CommandError as exc:
        known = revisions()
        raise click.ClickException(f"cannot take the schema to {revision!r}: {exc} (this code's revisions: "
                                   f"{known[0]} to {known[-1]}, and base)") from None
    click.echo(f"database schema is at {revision}")


def _newer_revision(engine: Engine) -> str | None:
    """The schema's revision when this code does not know it (a newer release made it), else None."""
    with engine.connect() as conn:
        if not inspect(conn).has_table("alembic_version"):
            return None
        stored = conn.execute(text("SELECT version_num FROM alembic_version")).scalars().all()
    return next((rev for rev in stored if rev not in revisions()), None)


commands = [db_group]
