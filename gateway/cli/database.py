"""``elimu db``: schema migrations."""

from __future__ import annotations

import click

from registry.migrate import upgrade

from . import Context, pass_context


@click.group("db")
def db_group() -> None:
    """Database schema."""


@db_group.command("upgrade")
@pass_context
def db_upgrade(ctx: Context) -> None:
    """Bring the database schema up to date."""
    upgrade(ctx.runtime.db.engine)
    click.echo("database schema is up to date")


commands = [db_group]
