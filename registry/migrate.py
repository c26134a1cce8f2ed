"""Schema migrations (Alembic), callable from the CLI and the tests."""

from __future__ import annotations

import contextlib
import functools
import logging
import time
from collections.abc import Iterator
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, text
from sqlalchemy.exc import DBAPIError

from .models import Base

logger = logging.getLogger(__name__)

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


# Advisory lock key of `elimu db upgrade` (any fixed number no other code uses): "ELIMUDB".
MIGRATION_LOCK = 0x454C494D554442

# How long a migration's statement may wait for a lock on PostgreSQL before it gives up and the
# upgrade retries. A DDL statement waiting for a lock queues every later query of that table behind
# it, and the web's queries are cut off after ELIMU_DB_STATEMENT_TIMEOUT_MS (3 s, lock waits
# included): 1 s keeps a blocked upgrade from turning into 3 s busy answers for every caller.
LOCK_TIMEOUT_MS = 1000
# The same for the CONCURRENTLY index builds and drops, whose waits (for the table's SHARE UPDATE
# EXCLUSIVE lock, then for older transactions to end) hold no live query up: they may wait longer.
CONCURRENT_LOCK_TIMEOUT_MS = 30_000
# Tries of the upgrade when a lock wait gives up, and the pause before each retry (seconds).
ATTEMPTS = 5
BACKOFF_S = (2, 4, 8, 16)
# Pause between polls of the advisory lock while another upgrade runs (seconds).
POLL_S = 0.5

LOCK_NOT_AVAILABLE = "55P03"


class MigrationBlocked(RuntimeError):
    """An upgrade or downgrade gave up waiting for a lock; the schema is at a whole revision."""


def _lock_not_available(exc: BaseException) -> bool:
    orig = getattr(exc, "orig", None)
    return (getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None)) == LOCK_NOT_AVAILABLE


def upgrade(engine: Engine, revision: str = "head", **limits) -> None:
    """Bring the schema at ``engine`` up to ``revision``.

    On PostgreSQL (see ``_migrate``): one upgrade runs at a time (several hosts starting together,
    each web unit runs it before it starts, wait for the first and then find the schema up to date);
    each revision commits on its own; a statement waits at most ``lock_timeout_ms`` for a lock, and
    a revision that gives up is tried again (``attempts`` in all) before ``MigrationBlocked``."""
    _migrate(engine, command.upgrade, revision, **limits)


def downgrade(engine: Engine, revision: str, **limits) -> None:
    """Take the schema at ``engine`` back to ``revision``, the same way as ``upgrade``."""
    _migrate(engine, command.downgrade, revision, **limits)


def _migrate(engine: Engine, run, revision: str, *, lock_timeout_ms: int = LOCK_TIMEOUT_MS,
             concurrent_lock_timeout_ms: int = CONCURRENT_LOCK_TIMEOUT_MS, attempts: int = ATTEMPTS,
             sleep=time.sleep) -> None:
    cfg = alembic_config(engine.url.render_as_string(hide_password=False))
    if engine.dialect.name != "postgresql":
        with engine.begin() as conn:  # SQLite: the whole run is one transaction
            cfg.attributes["connection"] = conn
            run(cfg, revision)
        return
    cfg.attributes["concurrent_lock_timeout_ms"] = concurrent_lock_timeout_ms
    with engine.connect() as conn:
        _take_migration_lock(conn, sleep)
        try:
            # A role's statement_timeout (the web's 3 s, say) would cut an index build off.
            conn.execute(text("SET statement_timeout = 0"))
            conn.execute(text(f"SET lock_timeout = {int(lock_timeout_ms)}"))
            conn.commit()
            for attempt in range(1, attempts + 1):
                cfg.attributes["connection"] = conn
                try:
                    run(cfg, revision)  # one transaction per revision (env.py): a retry resumes
                    return
                except DBAPIError as exc:
                    conn.rollback()
                    if not _lock_not_available(exc):
                        raise
                    at = MigrationContext.configure(conn).get_current_revision() or "none"
                    conn.rollback()
                    statement = " ".join(str(exc.statement or "").split())[:120]
                    if attempt == attempts:
                        raise MigrationBlocked(
                            f"gave up after {attempts} tries: a statement waited longer than its lock "
                            f"timeout ({lock_timeout_ms} ms; {concurrent_lock_timeout_ms} ms for a CONCURRENTLY "
                            f"index) for a lock another session holds: {statement}. The schema is at "
                            f"revision {at}, whole and usable; no half-done revision is recorded. Find the "
                            f"session with SELECT pid, xact_start, state, query FROM pg_stat_activity WHERE "
                            f"xact_start < now() - interval '1 second' ORDER BY xact_start, let it end (or "
                            f"pg_terminate_backend(pid)), then run `elimu db {run.__name__}` again") from None
                    pause = BACKOFF_S[min(attempt, len(BACKOFF_S)) - 1]
                    logger.warning("schema migration: a lock wait gave up at revision %s (%s); try %d of %d "
                                   "in %d s", at, statement, attempt + 1, attempts, pause)
                    sleep(pause)
        finally:
            with contextlib.suppress(DBAPIError):  # a lost connection let go of its lock already
                conn.rollback()
                conn.execute(text("RESET lock_timeout"))
                conn.execute(text("RESET statement_timeout"))
                conn.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": MIGRATION_LOCK})
                conn.commit()


def _take_migration_lock(conn: Connection, sleep) -> None:
    """A session-level advisory lock, held across the revisions' own transactions. Polled, not
    waited for: a session waiting in pg_advisory_lock keeps a snapshot open, which the holder's
    CREATE INDEX CONCURRENTLY would wait for in turn (a deadlock)."""
    waiting = False
    while True:
        taken = conn.execute(text("SELECT pg_try_advisory_lock(:key)"), {"key": MIGRATION_LOCK}).scalar()
        conn.commit()
        if taken:
            return
        if not waiting:
            logger.info("schema migration: another upgrade is running; waiting for it")
            waiting = True
        sleep(POLL_S)


# --- helpers for the revisions ------------------------------------------------------------------

def create_index(name: str, table: str, columns: list[str], where: str | None = None) -> None:
    """``op.create_index``; on PostgreSQL built CONCURRENTLY (outside a transaction), so writes to
    the table go on while it is built. A build that failed leaves an invalid index: it is dropped
    (at once if it can be, else before the next try) and built again."""
    from alembic import op

    ctx = op.get_context()
    if ctx.dialect.name != "postgresql":
        op.create_index(name, table, columns, unique=False, sqlite_where=text(where) if where else None)
        return
    with ctx.autocommit_block(), _concurrent_lock_timeout(ctx):
        _drop_if_invalid(ctx, name)
        try:
            op.create_index(name, table, columns, unique=False, if_not_exists=True, postgresql_concurrently=True,
                            postgresql_where=text(where) if where else None)
        except DBAPIError:
            with contextlib.suppress(DBAPIError):  # else the next try drops it
                _drop_if_invalid(ctx, name)
            raise


def drop_index(name: str, table: str, where: str | None = None) -> None:
    """``op.drop_index``; on PostgreSQL CONCURRENTLY, without the ACCESS EXCLUSIVE lock."""
    from alembic import op

    ctx = op.get_context()
    if ctx.dialect.name != "postgresql":
        op.drop_index(name, table_name=table, sqlite_where=text(where) if where else None)
        return
    with ctx.autocommit_block(), _concurrent_lock_timeout(ctx):
        op.drop_index(name, table_name=table, if_exists=True, postgresql_concurrently=True)


def _drop_if_invalid(ctx: MigrationContext, name: str) -> None:
    if ctx.as_sql:
        return
    valid = ctx.connection.execute(text("SELECT indisvalid FROM pg_index WHERE indexrelid = to_regclass(:name)"),
                                   {"name": name}).scalar()
    if valid is False:
        ctx.connection.execute(text(f'DROP INDEX CONCURRENTLY IF EXISTS "{name}"'))


@contextlib.contextmanager
def _concurrent_lock_timeout(ctx: MigrationContext) -> Iterator[None]:
    attributes = ctx.config.attributes if ctx.config is not None else {}
    if ctx.as_sql or "concurrent_lock_timeout_ms" not in attributes:
        yield
        return
    before = ctx.connection.execute(text("SHOW lock_timeout")).scalar()
    ctx.connection.execute(text(f"SET lock_timeout = {int(attributes['concurrent_lock_timeout_ms'])}"))
    try:
        yield
    finally:
        ctx.connection.execute(text("SELECT set_config('lock_timeout', :value, false)"), {"value": before})


def pending_changes(engine: Engine) -> list[tuple]:
    """Differences between the models and the migrated schema (empty when they agree)."""
    from alembic.autogenerate import compare_metadata

    with engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"compare_type": True})
        return compare_metadata(ctx, Base.metadata)
