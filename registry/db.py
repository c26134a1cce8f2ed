"""Database engine, sessions, and the after-commit hook that hands queued SMS to the workers."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Connection, Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.orm import Session, sessionmaker


@dataclass(frozen=True)
class PendingMessage:
    """An outbox row committed in this transaction, to hand to the SMS workers after commit.

    ``clear_body`` is set only for secrets (OTPs) whose stored body is redacted: the clear text
    travels in the job, never in the database.
    """

    message_id: int
    priority: str
    clear_body: str | None = None


Dispatcher = Callable[[Sequence[PendingMessage]], None]
PENDING_KEY = "elimu.pending_messages"
DISPATCH_KEY = "elimu.dispatch"


def make_engine(url: str, **kwargs: object) -> Engine:
    """An engine with sane pooling: SQLite gets WAL and a busy timeout, PostgreSQL a real pool."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False}, **kwargs)

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn, _record):  # pragma: no cover - trivial
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.close()

        return engine
    kwargs.setdefault("pool_size", 10)
    kwargs.setdefault("max_overflow", 20)
    kwargs.setdefault("pool_recycle", 1800)
    engine = create_engine(url, **kwargs)
    if not kwargs.get("pool_pre_ping"):
        _ping_when_idle(engine)
    return engine


IDLE_PING_S = 2.0


def _ping_when_idle(engine: Engine, idle_s: float = IDLE_PING_S) -> None:
    """SQLAlchemy's ``pool_pre_ping``, but only for a connection idle in the pool longer than
    ``idle_s``: a dead one (server restarted, idle timeout, network) is replaced before use, while
    under load, where connections come back within milliseconds, no hop pays a ping round trip.

    A connection the server dropped within the last ``idle_s`` fails its statement instead; that
    error invalidates the whole pool (SQLAlchemy does so on any disconnect), and the callback gets
    its deliberate degraded answer (``gateway.degraded``), as one in flight during an outage does.
    """
    dialect = engine.dialect

    @event.listens_for(engine, "connect")
    @event.listens_for(engine, "checkin")
    def _fresh(_dbapi_conn, record) -> None:
        record.info["elimu_idle_since"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _checked_out(dbapi_conn, record, _proxy) -> None:
        since = record.info.get("elimu_idle_since")
        if since is not None and time.monotonic() - since <= idle_s:
            return
        try:
            dialect.do_ping(dbapi_conn)
        except dialect.loaded_dbapi.Error as exc:
            if dialect.is_disconnect(exc, dbapi_conn, None):
                raise DisconnectionError() from exc  # the pool discards it and connects afresh
            raise


class Database:
    """Engine + session factory. ``dispatch`` receives the outbox rows of every committed transaction."""

    def __init__(self, url: str, dispatch: Dispatcher | None = None, **engine_kwargs: object) -> None:
        self.url = url
        self.engine = make_engine(url, **engine_kwargs)
        self.dispatch: Dispatcher | None = dispatch
        self._factory = sessionmaker(self.engine, expire_on_commit=False, info={DISPATCH_KEY: self._dispatch})

    def _dispatch(self, pending: Sequence[PendingMessage]) -> None:
        if self.dispatch is not None and pending:
            self.dispatch(pending)

    def session(self) -> Session:
        return self._factory()

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        """A session that commits on success and rolls back on error."""
        with self._factory() as session, session.begin():
            yield session

    @contextmanager
    def autocommit(self) -> Iterator[Connection]:
        """A connection for work that is one statement (a read, or an ``INSERT … RETURNING``): in
        autocommit, so the driver sends no ``BEGIN`` and ``COMMIT`` around it (two round trips
        saved); the statement is its own transaction, as atomic as in an explicit one."""
        with self.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            yield connection

    def ping(self) -> None:
        with self.engine.connect() as conn:
            conn.execute(text("SELECT 1"))

    @property
    def is_sqlite(self) -> bool:
        return self.engine.dialect.name == "sqlite"

    def dispose(self) -> None:
        self.engine.dispose()


def add_pending(session: Session, pending: PendingMessage) -> None:
    """Remember an outbox row to dispatch once this session's transaction commits."""
    session.info.setdefault(PENDING_KEY, []).append(pending)


def take_pending(session: Session) -> list[PendingMessage]:
    """Take this session's outbox rows out of the after-commit dispatch, for a caller (an SMS
    worker) that sends them itself once it has committed."""
    return list(session.info.pop(PENDING_KEY, None) or ())


@event.listens_for(Session, "after_commit")
def _after_commit(session: Session) -> None:
    pending = session.info.pop(PENDING_KEY, None)
    dispatch = session.info.get(DISPATCH_KEY)
    if pending and dispatch is not None:
        dispatch(pending)


@event.listens_for(Session, "after_rollback")
def _after_rollback(session: Session) -> None:
    session.info.pop(PENDING_KEY, None)
