"""Shared fixtures.

Fast unit tests use SQLite and fakeredis. Integration tests use real PostgreSQL and Redis: each test
session gets its own PostgreSQL database and its own Redis database number, so parallel runs
(pytest-xdist, several developers) never see each other's data. With ``CI`` or
``ELIMU_REQUIRE_SERVICES`` set, a missing server fails the run instead of skipping.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import NoReturn

import fakeredis
import pytest
import redis as redis_lib
from redis.backoff import NoBackoff
from redis.retry import Retry
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from gateway.config import Settings
from gateway.runtime import Runtime
from registry.db import Database
from registry.models import Base

PG_URL = os.environ.get("ELIMU_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("ELIMU_TEST_REDIS_URL", "redis://127.0.0.1:6379")
REQUIRE_SERVICES = bool(os.environ.get("CI") or os.environ.get("ELIMU_REQUIRE_SERVICES"))
TEST_SECRET = "test-secret-key-0123456789abcdef"


def missing(reason: str, remedy: str = "see .ci/run") -> NoReturn:
    """Something a test needs is not here: skip it on a developer's machine, fail it under ``CI``
    (a skipped test proves nothing, and a green run must not hide one)."""
    if REQUIRE_SERVICES:
        pytest.fail(f"{reason}; CI requires it ({remedy})", pytrace=False)
    pytest.skip(reason)


def _unavailable(what: str, exc: Exception) -> NoReturn:
    missing(f"{what} is not reachable ({type(exc).__name__}: {exc}".splitlines()[0] + ")", "start it: see .ci/run")


@pytest.fixture(autouse=True)
def _drains_do_not_linger(monkeypatch: pytest.MonkeyPatch) -> None:
    """In-process drains answer a short batch at once (``workers.inbound.LINGER_S``); the tests
    of that wait set it themselves."""
    monkeypatch.setattr("workers.inbound.LINGER_S", 0.0)


@pytest.fixture(autouse=True)
def _signal_handlers_restored() -> Iterator[None]:
    """An RQ worker run in the test's own thread installs its SIGINT and SIGTERM handlers and leaves
    them: a later test of the same process that sends itself a Ctrl-C (the import's) then met RQ's
    StopRequested instead. Each test ends with the handlers it started with."""
    saved = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    yield
    for sig, handler in saved.items():
        if handler is not None and signal.getsignal(sig) is not handler:
            signal.signal(sig, handler)


# --- PostgreSQL ---------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    """A fresh PostgreSQL database for this test session (dropped at the end)."""
    admin = create_engine(PG_URL, isolation_level="AUTOCOMMIT")
    name = f"elimu_test_{uuid.uuid4().hex[:10]}"
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as exc:  # noqa: BLE001
        admin.dispose()
        _unavailable("PostgreSQL", exc)
    url = make_url(PG_URL).set(database=name).render_as_string(hide_password=False)
    yield url
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture(scope="session")
def _pg_schema(pg_url: str) -> Iterator[Database]:
    database = Database(pg_url, pool_size=5, max_overflow=5)
    Base.metadata.create_all(database.engine)
    _stamp(database)
    yield database
    database.dispose()


def _stamp(database: Database) -> None:
    """Mark a schema made from the models as at the migrations' head (``alembic stamp head``,
    without Alembic's start-up cost for every test): ``/readyz`` checks it."""
    from registry.migrate import revisions

    with database.engine.begin() as conn:
        conn.execute(text("CREATE TABLE alembic_version (version_num VARCHAR(32) PRIMARY KEY)"))
        conn.execute(text("INSERT INTO alembic_version VALUES (:head)"), {"head": revisions()[-1]})


def _truncate_all(database: Database) -> None:
    names = ", ".join(f'"{t.name}"' for t in Base.metadata.sorted_tables)
    with database.engine.begin() as conn:
        conn.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))


@pytest.fixture
def pg_database(_pg_schema: Database) -> Iterator[Database]:
    """Real PostgreSQL with the full schema, emptied after each test."""
    _pg_schema.dispatch = None
    yield _pg_schema
    _pg_schema.dispatch = None
    _truncate_all(_pg_schema)


# --- SQLite -------------------------------------------------------------------------------------


@pytest.fixture
def sqlite_database(tmp_path: Path) -> Iterator[Database]:
    database = Database(f"sqlite:///{tmp_path / 'test.sqlite3'}")
    Base.metadata.create_all(database.engine)
    _stamp(database)
    yield database
    database.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request: pytest.FixtureRequest) -> Database:
    """The same test on SQLite and on PostgreSQL."""
    return request.getfixturevalue({"sqlite": "sqlite_database", "postgresql": "pg_database"}[request.param])


# --- Redis --------------------------------------------------------------------------------------


@pytest.fixture
def fake_redis() -> fakeredis.FakeRedis:
    return fakeredis.FakeRedis(server=fakeredis.FakeServer())


RESERVATION = "elimu:test-db-lock:{}"


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """A real Redis database number reserved for this test session.

    The reservation names a connection this session keeps open: it lives as long as the process
    (a killed run's connection is closed by its kernel, and Redis forgets it), so a reservation
    whose connection Redis no longer has is taken over. Live runs, on this machine or another, keep
    theirs: parallel runs (xdist workers too) each get a number of their own."""
    try:
        admin = redis_lib.Redis.from_url(REDIS_URL, db=0, socket_connect_timeout=2)
        admin.ping()
    except Exception as exc:  # noqa: BLE001
        _unavailable("Redis", exc)
    holder = redis_lib.Redis.from_url(REDIS_URL, db=0, single_connection_client=True)
    holder.client_setname(f"elimu-test-db-lock-{os.getpid()}")
    token = f"client {holder.client_id()} pid {os.getpid()} on {socket.gethostname()}"
    # subscribed, it is never closed as idle (a server's ``timeout``); nothing reads from it again
    holder.connection.send_command("SUBSCRIBE", RESERVATION.format("holders"))
    number = _reserve(admin, token)
    url = f"{REDIS_URL.rstrip('/')}/{number}"
    redis_lib.Redis.from_url(url).flushdb()
    yield url
    redis_lib.Redis.from_url(url).flushdb()
    if admin.get(RESERVATION.format(number)) == token.encode():
        admin.delete(RESERVATION.format(number))
    holder.close()


def _reserve(admin: redis_lib.Redis, token: str) -> int:
    """The first database number 1-15 free or held by a closed connection, now reserved by ``token``."""
    for number in range(1, 16):
        with admin.pipeline() as pipe:
            try:
                pipe.watch(RESERVATION.format(number))
                held = pipe.get(RESERVATION.format(number))
                if held is not None and _holder_alive(pipe, held):
                    continue
                pipe.multi()
                pipe.set(RESERVATION.format(number), token)
                pipe.execute()
                return number
            except redis_lib.WatchError:
                continue  # another run took (or took over) this number just now
    pytest.fail("all Redis databases 1-15 are reserved by running test sessions", pytrace=False)


def _holder_alive(client: redis_lib.Redis, held: bytes) -> bool:
    """Whether the connection a reservation names is still open (a reservation of another form,
    an older checkout's, is left to its own expiry)."""
    found = re.match(rb"client (\d+) ", held)
    return found is None or bool(client.client_list(client_id=[int(found[1])]))


def unreachable_redis() -> redis_lib.Redis:
    """A client of a Redis that is not there (port 1 refuses at once). It tries as often as the
    production client (redis-py's default 10 retries) but without redis-py's back-off sleeps (up
    to 1 s each, at random): a test of what the code does with Redis down, not of redis-py's wait."""
    retries = redis_lib.Redis().get_retry().get_retries()  # the production client's (no connection made)
    return redis_lib.Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.2, retry=Retry(NoBackoff(), retries))


@pytest.fixture
def real_redis(redis_url: str) -> Iterator[redis_lib.Redis]:
    client = redis_lib.Redis.from_url(redis_url)
    client.flushdb()
    yield client
    client.flushdb()
    client.close()


# --- Settings, runtime, app ---------------------------------------------------------------------


def make_settings(tmp_path: Path, database: Database, redis_url: str | None = None, **overrides) -> Settings:
    env = {"ELIMU_ENV": "development", "ELIMU_SECRET_KEY": TEST_SECRET, "ELIMU_INSTANCE_PATH": str(tmp_path)}
    # Conversation tests send many hops from one phone; the hop limit has tests of its own.
    overrides.setdefault("ussd_hops_per_minute", 0)
    return Settings.from_env(env, database_url=database.url, redis_url=redis_url, **overrides)


@pytest.fixture
def runtime(tmp_path: Path, sqlite_database: Database, fake_redis) -> Iterator[Runtime]:
    """Fast runtime: SQLite + fakeredis + outbox SMS."""
    rt = Runtime.build(make_settings(tmp_path, sqlite_database), db=sqlite_database, redis=fake_redis)
    yield rt


@pytest.fixture
def integration_runtime(tmp_path: Path, pg_database: Database, real_redis, redis_url: str) -> Iterator[Runtime]:
    """Production-shaped runtime: PostgreSQL + real Redis + outbox SMS."""
    rt = Runtime.build(make_settings(tmp_path, pg_database, redis_url), db=pg_database, redis=real_redis)
    yield rt


@pytest.fixture
def app(runtime: Runtime):
    from gateway.app import create_app

    application = create_app(runtime=runtime)
    application.config.update(TESTING=True)
    return application


@pytest.fixture
def client(app):
    return app.test_client()


# --- Figures printed at the end of the run (fault and fuzz suites) ------------------------------


def pytest_configure(config: pytest.Config) -> None:
    if not os.environ.get("PYTEST_XDIST_WORKER"):  # the controller (or a run without xdist)
        from tests import figures

        figures.reset()


def pytest_terminal_summary(terminalreporter, exitstatus: int, config: pytest.Config) -> None:
    from tests import figures

    if os.environ.get("PYTEST_XDIST_WORKER"):
        return  # the controller prints everyone's figures
    rows = figures.read()
    if not rows:
        return
    terminalreporter.section("elimu figures (fault and fuzz suites)")
    for row in rows:
        terminalreporter.write_line(f"{row['suite']:<8} {row['name']:<60} {row['value']}")
