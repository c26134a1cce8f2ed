"""Alembic environment: runs against the URL handed over by ``registry.migrate``."""

from __future__ import annotations

from alembic import context
from sqlalchemy import pool

from registry.db import make_engine
from registry.models import Base

config = context.config
target_metadata = Base.metadata


def run_migrations_offline() -> None:
    context.configure(url=config.get_main_option("sqlalchemy.url"), target_metadata=target_metadata,
                      literal_binds=True, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    engine = make_engine(config.get_main_option("sqlalchemy.url"), poolclass=pool.NullPool)
    with engine.connect() as conn:
        _run(conn)
    engine.dispose()


def _run(connection) -> None:
    # One transaction per revision: what a revision locks is let go when it commits, not at the end
    # of the upgrade, and a revision with an autocommit block (CREATE INDEX CONCURRENTLY) can run.
    # (SQLite: ``registry.migrate`` hands over a connection in a transaction, which holds them all.)
    context.configure(connection=connection, target_metadata=target_metadata, render_as_batch=True,
                      compare_type=True, transaction_per_migration=True)
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
