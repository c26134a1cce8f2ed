"""``elimu db``: schema migrations."""

from __future__ import annotations

import click

from registry.migrate import LOCK_TIMEOUT_MS, MigrationBlocked, downgrade, upgrade

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
    """Bring the database schema up to date."""
    try:
        upgrade(ctx.runtime.db.engine, lock_timeout_ms=lock_timeout_ms)
    except MigrationBlocked as exc:
        raise DatabaseFailure(f"schema upgrade blocked: {exc}") from None
    click.echo("database schema is up to date")


@db_group.command("downgrade")
@click.argument("revision")
@_lock_timeout
@pass_context
def db_downgrade(ctx: Context, revision: str, lock_timeout_ms: int) -> None:
    """Take the database schema back to REVISION (see docs/deploy.md, Upgrading)."""
    try:
        downgrade(ctx.runtime.db.engine, revision, lock_timeout_ms=lock_timeout_ms)
    except MigrationBlocked as exc:
        raise DatabaseFailure(f"schema downgrade blocked: {exc}") from None
    click.echo(f"database schema is at {revision}")


commands = [db_group]
