"""Schema migrations (Alembic), callable from the CLI and the tests."""

from __future__ import annotations

import functools
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, text
from sqlalchemy.exc import DBAPIError

from .models import Base

MIGRATIONS = Path(__file__).parent / "migrations"


def alembic_config(url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


@functools.cache
def revisions() -> tuple[str, ...]:
    """This code's revisions, oldest first (the last is the head)."""
    script = ScriptDirectory.from_config(alembic_config("sqlite://"))
    return tuple(reversed([rev.revision for rev in script.walk_revisions()]))


def schema_state(connection: Connection) -> str:
    """``ok`` when the schema is at this code's head (or at a revision newer than this code knows,
    as during a rolling upgrade), else what is wrong, saying what to run."""
    try:
        stored = connection.execute(text("SELECT version_num FROM alembic_version")).scalars().all()
    except DBAPIError:
        return "not migrated: run `elimu db upgrade`"
    known = revisions()
    if not stored:
        return "not migrated: run `elimu db upgrade`"
    behind = [rev for rev in stored if rev in known and rev != known[-1]]
    if behind:
        return f"at {behind[0]}, this code needs {known[-1]}: run `elimu db upgrade`"
    return "ok"


# pg_advisory_xact_lock key of `elimu db upgrade` (any fixed number no other code uses): "ELIMUDB".
MIGRATION_LOCK = 0x454C494D554442


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Bring the schema at ``engine`` up to ``revision``. On PostgreSQL one upgrade runs at a time:
    several hosts starting together (each web unit runs it before it starts) wait for the first,
    then find the schema up to date, where the second failed on tables the first had just made."""
    cfg = alembic_config(engine.url.render_as_string(hide_password=False))
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK})
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)


def pending_changes(engine: Engine) -> list[tuple]:
    """Differences between the models and the migrated schema (empty when they agree)."""
    from alembic.autogenerate import compare_metadata

    with engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"compare_type": True})
        return compare_metadata(ctx, Base.metadata)
