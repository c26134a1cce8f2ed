"""Database engine, sessions, and the after-commit hook that hands queued SMS to the workers."""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from psycopg.pq import ExecStatus
from sqlalchemy import Connection, Engine, Executable, create_engine, event, text
from sqlalchemy.engine import Dialect, make_url
from sqlalchemy.exc import DBAPIError, DisconnectionError
from sqlalchemy.orm import Session, sessionmaker

from .arrays import send_binary_arrays

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PendingMessage:
    """An outbox row committed in this transaction, to hand to the SMS workers after commit.

    ``clear_body`` is set only for secrets (OTPs) whose stored body is redacted: the clear text
    travels in the job, never in the database.
    """

    message_id: int
    priority: str
    clear_body: str | None = None


@dataclass(frozen=True)
class Direct:
    """A statement as the driver takes it: SQL compiled once, and the values compiled into it."""

    sql: str
    defaults: Mapping[str, Any]

    @classmethod
    def of(cls, statement: Executable, dialect: Dialect) -> Direct | None:
        """None when SQLAlchemy would transform a parameter or a result of ``statement`` on
        ``dialect``, or expand a parameter at execution: such a statement must run through it."""
        compiled = statement.compile(dialect=dialect)
        if compiled.positiontup is not None or compiled.post_compile_params or compiled.literal_execute_params:
            return None
        if any(bind.type.dialect_impl(dialect).bind_processor(dialect) for bind in compiled.binds.values()):
            return None
        columns = getattr(statement, "exported_columns", ())
        if any(column.type.dialect_impl(dialect).result_processor(dialect, None) for column in columns):
            return None
        defaults = {name: value for name, value in compiled.params.items() if value is not None}
        return cls(str(compiled), defaults)


Dispatcher = Callable[[Sequence[PendingMessage]], None]
PENDING_KEY = "elimu.pending_messages"
DISPATCH_KEY = "elimu.dispatch"


def postgres_connect_args(
    url: str, *, statement_timeout_ms: int | None = None, connect_timeout_s: int | None = None,
    environ: Mapping[str, str] | None = None,
) -> dict[str, object]:
    """libpq settings for PostgreSQL connections: how long to wait for a connection
    (``connect_timeout``) and, server side, for a statement (``statement_timeout``, locks included).

    What the URL sets wins: a ``connect_timeout`` in its query is kept, and a ``statement_timeout``
    in its ``options`` (or in ``PGOPTIONS``, when the URL has none) is never overridden. ``None``
    or 0 leaves a setting as libpq and the server have it."""
    environ = os.environ if environ is None else environ
    query = make_url(url).query
    args: dict[str, object] = {}
    if connect_timeout_s and "connect_timeout" not in query and "PGCONNECT_TIMEOUT" not in environ:
        args["connect_timeout"] = max(2, int(connect_timeout_s))  # libpq takes 1 as 2
    options = query.get("options", environ.get("PGOPTIONS", ""))
    if isinstance(options, tuple):  # the query named it more than once: libpq takes the last
        options = options[-1]
    if statement_timeout_ms and "statement_timeout" not in options:
        args["options"] = f"{options} {_timeout_option(statement_timeout_ms)}".strip()
    return args


def _timeout_option(statement_timeout_ms: int) -> str:
    return f"-c statement_timeout={int(statement_timeout_ms)}"


@dataclass(frozen=True)
class OptionalOption:
    """A setting of ours in the ``options`` startup parameter, dropped once the server refuses it
    (``refused`` is shared by a database's engines, so the server is asked once)."""

    option: str
    refused: threading.Event


def _connect_without_if_refused(engine: Engine, optional: OptionalOption) -> None:
    """Connect without ``optional``'s option where the server refuses it: PgBouncer refuses
    startup parameters it does not know unless told to take them (``track_extra_parameters`` or
    ``ignore_startup_parameters``, ``docs/deploy.md``). A service that waits without a limit is
    better than one that cannot connect; the log says so, once."""
    dialect = engine.dialect
    option, refused = optional.option, optional.refused

    @event.listens_for(engine, "do_connect")
    def _connect(_dialect, _record, cargs, cparams):
        if refused.is_set():
            cparams["options"] = _without(cparams.get("options", ""), option)
            return dialect.connect(*cargs, **cparams)
        try:
            return dialect.connect(*cargs, **cparams)
        except dialect.loaded_dbapi.OperationalError as exc:
            if "startup parameter" not in str(exc) or option not in cparams.get("options", ""):
                raise
            refused.set()
            log.warning("the database refused %r in the connection's options (%s); connecting without it, so "
                        "statements wait without a limit: see docs/deploy.md", option, str(exc).strip()[:200])
            cparams["options"] = _without(cparams["options"], option)
            return dialect.connect(*cargs, **cparams)


def _without(options: str, option: str) -> str:
    return " ".join(options.replace(option, " ").split())


def make_engine(url: str, **kwargs: object) -> Engine:
    """An engine with sane pooling: SQLite gets WAL and a busy timeout, PostgreSQL a real pool.
    Its errors never quote a statement's parameters (phones, names, message texts) into a log."""
    parsed = make_url(url)
    kwargs.setdefault("hide_parameters", True)
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
    optional = kwargs.pop("optional_option", None)
    kwargs.setdefault("pool_size", 10)
    kwargs.setdefault("max_overflow", 20)
    kwargs.setdefault("pool_recycle", 1800)
    engine = create_engine(url, **kwargs)
    event.listen(engine, "connect", send_binary_arrays)  # registry.arrays.among's arrays in binary
    if isinstance(optional, OptionalOption):
        _connect_without_if_refused(engine, optional)
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


TUPLES_OK = ExecStatus.TUPLES_OK


class _KeptConnection(threading.local):
    """A thread's own connection for ``Database.fetch``."""

    connection: Any = None
    cursor: Any = None  # the connection's cursor, reused: a new one per statement cost ~25 us of CPU
    used: float = 0.0  # time.monotonic() of its last statement
    pid: int = 0


class Database:
    """Engine + session factory. ``dispatch`` receives the outbox rows of every committed transaction."""

    def __init__(
        self, url: str, dispatch: Dispatcher | None = None, *, statement_timeout_ms: int | None = None,
        connect_timeout_s: int | None = None, **engine_kwargs: object,
    ) -> None:
        """``statement_timeout_ms`` and ``connect_timeout_s``: see ``postgres_connect_args`` (PostgreSQL
        only; SQLite waits for its write lock ``timeout`` seconds, 30)."""
        self.url = url
        if make_url(url).get_backend_name() == "postgresql":
            given = engine_kwargs.get("connect_args") or {}
            limits = postgres_connect_args(url, statement_timeout_ms=statement_timeout_ms,
                                           connect_timeout_s=connect_timeout_s)
            if limits:
                engine_kwargs["connect_args"] = {**limits, **given}  # type: ignore[dict-item]
            if statement_timeout_ms and "statement_timeout" in str(limits.get("options", "")):
                engine_kwargs["optional_option"] = OptionalOption(_timeout_option(statement_timeout_ms),
                                                                  threading.Event())
        self.engine = make_engine(url, **engine_kwargs)
        self.dispatch: Dispatcher | None = dispatch
        self._engine_kwargs = engine_kwargs
        self._autocommit_engine: Engine | None = None
        self._autocommit_lock = threading.Lock()
        self._direct: dict[Executable, Direct | None] = {}
        self._kept = _KeptConnection()
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
        saved); the statement is its own transaction, as atomic as in an explicit one.

        On PostgreSQL it comes from a pool of its own whose connections are in autocommit from the
        start, so none is switched to autocommit on checkout and back on return."""
        if self.is_sqlite:
            with self.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
                yield connection
            return
        with self.autocommit_engine.connect() as connection:
            yield connection

    @property
    def autocommit_engine(self) -> Engine:
        """The PostgreSQL engine behind ``autocommit`` and ``fetch``, made on first use."""
        with self._autocommit_lock:
            if self._autocommit_engine is None:
                kwargs = {"isolation_level": "AUTOCOMMIT", "pool_reset_on_return": None, **self._engine_kwargs}
                self._autocommit_engine = make_engine(self.url, **kwargs)
            return self._autocommit_engine

    def fetch(self, statement: Executable, params: Mapping[str, Any]) -> list[tuple[Any, ...]]:
        """Run one statement in autocommit (as ``autocommit`` does) and return its rows as tuples.

        For the statements every callback runs (the caller read of a USSD session, the INSERT of
        an inbound SMS). On PostgreSQL the statement is compiled once and sent on a driver
        connection the calling thread keeps (``_kept_connection``): SQLAlchemy's per-execution
        work (execution context, parameter and result processing, the Connection wrapper) cost
        about 100 us of CPU a statement, more than the driver's own 80 us, and taking a
        connection from the pool and giving it back for each statement a third of what was left
        (``bench/README.md``). Only a statement SQLAlchemy would not transform is sent so (no
        parameter or result conversion, no parameters expanded at execution); any other runs
        through ``autocommit`` like before. Driver errors arrive wrapped as SQLAlchemy wraps them
        (``DBAPIError`` subclasses), and a lost connection is dropped."""
        direct = self._direct_form(statement)
        if direct is None:
            with self.autocommit() as connection:
                result = connection.execute(statement, params)
                return [tuple(row) for row in result] if result.returns_rows else []
        values = {**direct.defaults, **params}
        connection = self._kept_connection()
        cursor = self._kept.cursor
        try:
            cursor.execute(direct.sql, values)
            # the result's own status, not ``description``, which builds a Column per field each time
            rows = cursor.fetchall() if cursor.pgresult.status == TUPLES_OK else []
        except Exception as exc:
            dialect = self.autocommit_engine.dialect
            if not isinstance(exc, dialect.loaded_dbapi.Error):
                raise
            lost = dialect.is_disconnect(exc, connection.dbapi_connection, None)
            if lost:
                self._kept.connection = self._kept.cursor = None
                connection.invalidate(exc)
            raise DBAPIError.instance(direct.sql, values, exc, dialect.loaded_dbapi.Error, hide_parameters=True,
                                      connection_invalidated=lost, dialect=dialect) from exc
        self._kept.used = time.monotonic()
        return rows

    def _kept_connection(self) -> Any:
        """The autocommit pool's connection this thread keeps for ``fetch`` (taken on first use,
        given back to the pool when the thread ends). One idle longer than ``IDLE_PING_S`` is
        pinged first and replaced if dead, as the pool does at checkout (``_ping_when_idle``); a dead one
        is let go before the reconnect, which may fail too while the server is away."""
        kept = self._kept
        connection = kept.connection
        if connection is not None and kept.pid != os.getpid():  # inherited over a fork: not ours to use
            connection = None
        elif connection is not None and time.monotonic() - kept.used > IDLE_PING_S:
            dialect = self.autocommit_engine.dialect
            try:
                dialect.do_ping(connection.dbapi_connection)
            except dialect.loaded_dbapi.Error as exc:
                connection.invalidate(exc)
                connection = kept.connection = kept.cursor = None  # a failed reconnect must not leave it kept
        if connection is None:
            connection = kept.connection = self._connect()
            kept.cursor = connection.cursor()
            kept.pid = os.getpid()
        return connection

    def _connect(self) -> Any:
        """A connection from the autocommit pool; the driver's failure to connect (the server away)
        arrives wrapped as SQLAlchemy wraps it, an ``OperationalError`` the callers take for an outage."""
        dialect = self.autocommit_engine.dialect
        try:
            return self.autocommit_engine.raw_connection()
        except dialect.loaded_dbapi.Error as exc:
            raise DBAPIError.instance(None, None, exc, dialect.loaded_dbapi.Error, hide_parameters=True,
                                      dialect=dialect) from exc

    def _direct_form(self, statement: Executable) -> Direct | None:
        try:
            return self._direct[statement]
        except KeyError:
            direct = None if self.is_sqlite else Direct.of(statement, self.autocommit_engine.dialect)
            self._direct[statement] = direct
            return direct

    def ping(self) -> None:
        with self.engine.connect() as conn:
            conn.execute(text("SELECT 1"))

    @property
    def is_sqlite(self) -> bool:
        return self.engine.dialect.name == "sqlite"

    def dispose(self) -> None:
        self.engine.dispose()
        if self._autocommit_engine is not None:
            self._autocommit_engine.dispose()


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
