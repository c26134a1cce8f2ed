"""The Alembic migrations build the schema on SQLite and PostgreSQL, and agree with the models."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import create_engine, event, inspect, select, text
from sqlalchemy.engine import make_url

from registry.db import Database
from registry.migrate import downgrade, pending_changes, revisions, upgrade
from registry.models import Base
from tests.conftest import PG_URL, _unavailable

# SQLite cannot reflect an expression index (0007's ix_audit_events_index_number): SQLAlchemy and
# Alembic say they skip it, and the tests of 0007 look for it in sqlite_master themselves.
pytestmark = [
    pytest.mark.filterwarnings("ignore:Skipped unsupported reflection of expression-based index"),
    pytest.mark.filterwarnings("ignore:autogenerate skipping metadata-specified expression-based index"),
]


@pytest.fixture
def empty_pg_url():
    """A new, empty PostgreSQL database (no create_all), dropped afterwards."""
    admin = create_engine(PG_URL, isolation_level="AUTOCOMMIT")
    name = f"elimu_migrate_{uuid.uuid4().hex[:10]}"
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as exc:  # noqa: BLE001
        admin.dispose()
        _unavailable("PostgreSQL", exc)
    yield make_url(PG_URL).set(database=name).render_as_string(hide_password=False)
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def _check(url: str) -> None:
    database = Database(url)
    try:
        upgrade(database.engine)
        assert set(inspect(database.engine).get_table_names()) >= set(Base.metadata.tables)
        assert pending_changes(database.engine) == []
        upgrade(database.engine)  # a second upgrade is a no-op
    finally:
        database.dispose()


def test_migrations_on_sqlite_match_the_models(tmp_path):
    _check(f"sqlite:///{tmp_path / 'migrated.sqlite3'}")


def test_migrations_on_postgresql_match_the_models(empty_pg_url):
    _check(empty_pg_url)


def test_hosts_upgrading_at_once_wait_for_each_other(empty_pg_url):
    """Two web units starting together both run `elimu db upgrade`: the second waits for the first
    (an advisory lock) and finds nothing to do, where it failed on the tables the first made."""
    import threading

    databases = [Database(empty_pg_url) for _ in range(3)]
    failures: list[BaseException] = []

    def run(database: Database) -> None:
        try:
            upgrade(database.engine)
        except BaseException as exc:  # noqa: BLE001 - reported below
            failures.append(exc)

    threads = [threading.Thread(target=run, args=(database,)) for database in databases]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        assert failures == []
        assert pending_changes(databases[0].engine) == []
    finally:
        for database in databases:
            database.dispose()


def test_pending_changes_notices_a_model_the_migrations_lack(tmp_path):
    database = Database(f"sqlite:///{tmp_path / 'migrated.sqlite3'}")
    upgrade(database.engine)
    with database.engine.begin() as conn:
        conn.execute(text("DROP INDEX ix_learners_birth_certificate_no"))
    assert any("ix_learners_birth_certificate_no" in repr(change) for change in pending_changes(database.engine))
    database.dispose()


def _index_names(engine) -> set[str]:
    return {index["name"] for index in inspect(engine).get_indexes("outbound_messages")}


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_a_database_at_0001_moves_to_the_partial_outbox_indexes_and_back(backend, tmp_path, request):
    url = f"sqlite:///{tmp_path / 'old.sqlite3'}" if backend == "sqlite" else request.getfixturevalue("empty_pg_url")
    database = Database(url)
    try:
        upgrade(database.engine, "0001")
        with database.engine.begin() as conn:
            conn.execute(text("INSERT INTO outbound_messages (recipient, kind, body, priority, status, attempts, "
                              "created_at, updated_at) VALUES ('+254712345678', 'reply', 'kept', 'sms-reply', "
                              "'queued', 0, CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"))
        assert "ix_outbound_messages_status_next" in _index_names(database.engine)
        upgrade(database.engine)
        names = _index_names(database.engine)
        assert {"ix_outbound_messages_due", "ix_outbound_messages_in_flight"} <= names
        assert "ix_outbound_messages_status_next" not in names
        assert pending_changes(database.engine) == []
        with database.engine.connect() as conn:
            assert conn.execute(text("SELECT body FROM outbound_messages")).scalars().all() == ["kept"]
        downgrade(database.engine, "0001")
        assert "ix_outbound_messages_status_next" in _index_names(database.engine)
    finally:
        database.dispose()


def test_an_update_by_id_with_a_status_check_is_planned_by_id_whatever_the_statistics(pg_database):
    """The plan ``record`` got from stale statistics before migration 0002: a walk of an index of
    every message's status instead of the primary key (see the migration's docstring)."""
    with pg_database.engine.begin() as conn:
        conn.execute(text("INSERT INTO outbound_messages (recipient, kind, body, priority, status, attempts, "
                          "created_at, updated_at) SELECT '+2547' || g, 'reply', 'x', 'sms-reply', 'submitted', 0, "
                          "now(), now() FROM generate_series(1, 2000) g"))
        conn.execute(text("SET LOCAL plan_cache_mode = force_generic_plan"))
        conn.execute(text("PREPARE record_one(int, text) AS UPDATE outbound_messages SET status_code = 101 "
                          "WHERE id = $1 AND status = $2"))
        plan = "\n".join(conn.execute(text("EXPLAIN EXECUTE record_one(7, 'submitted')")).scalars())
        conn.execute(text("DEALLOCATE record_one"))
    assert "pk_outbound_messages" in plan, plan


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_session_events_stored_before_0004_lose_what_was_typed(backend, tmp_path, request):
    from gateway.ussd.events import input_shape

    url = f"sqlite:///{tmp_path / 'old.sqlite3'}" if backend == "sqlite" else request.getfixturevalue("empty_pg_url")
    database = Database(url)
    typed = ["1*12345678*05092014*314159*4826*4826", "4*2", "2*A1B2C3", None, "1*[8]"]
    try:
        upgrade(database.engine, "0003")
        with database.engine.begin() as conn:
            for number, value in enumerate(typed):
                conn.execute(text("INSERT INTO ussd_session_events (session_id, last_input, created_at, updated_at) "
                                  "VALUES (:sid, :value, CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"),
                             {"sid": f"ATUid_{number}", "value": value})
        upgrade(database.engine)
        with database.engine.connect() as conn:
            stored = conn.execute(text("SELECT last_input FROM ussd_session_events ORDER BY id")).scalars().all()
        assert stored == ["1*[8]*[8]*[6]*[4]*[4]", "4*2", "2*[6]", None, "1*[8]"]
        assert stored == [input_shape(value) for value in typed]  # the migration's copy agrees with the code
    finally:
        database.dispose()


# --- upgrading a live PostgreSQL database (docs/deploy.md, Upgrading) ----------------------------

def _pg_statements(engine) -> list[tuple[str, bool]]:
    """Every statement the engine sends from now on, with whether its connection was in autocommit."""
    from sqlalchemy import event

    seen: list[tuple[str, bool]] = []

    @event.listens_for(engine, "before_cursor_execute")
    def record(conn, cursor, statement, parameters, context, executemany):  # noqa: ANN001, ARG001
        seen.append((" ".join(statement.split()), bool(conn.connection.dbapi_connection.autocommit)))

    return seen


def _revision(engine) -> str:
    with engine.connect() as conn:
        return conn.execute(text("SELECT version_num FROM alembic_version")).scalar_one()


def test_outbox_indexes_are_built_concurrently_outside_a_transaction(empty_pg_url):
    """0002 and 0003 took the outbox's ACCESS EXCLUSIVE (DROP INDEX) and SHARE (CREATE INDEX) locks,
    and one transaction for the whole upgrade held them to its end (22.9 s with 5 million messages
    and 2 million session events: every outbox read and write waited out the web's 3 s limit)."""
    database = Database(empty_pg_url)
    try:
        upgrade(database.engine, "0001")
        seen = _pg_statements(database.engine)
        upgrade(database.engine)
        ddl = [(sql, autocommit) for sql, autocommit in seen
               if " INDEX " in f" {sql} " and "pg_index" not in sql and "outbound_messages" in sql]
        assert len(ddl) == 4, ddl  # three builds, one drop (0007's audit index: its own test)
        assert all("CONCURRENTLY" in sql and autocommit for sql, autocommit in ddl), ddl
        first_ddl = seen.index(ddl[0])
        # the session's limit, then the concurrent builds' longer one (their waits hold up no query)
        assert [sql for sql, _ in seen[:first_ddl] if sql.startswith("SET lock_timeout")] == [
            "SET lock_timeout = 1000", "SET lock_timeout = 30000"]
        assert pending_changes(database.engine) == []
        with database.engine.connect() as conn:
            assert conn.execute(text("SHOW lock_timeout")).scalar() == "0"  # the pooled connection is reset
            assert not conn.execute(text("SELECT count(*) FROM pg_index WHERE NOT indisvalid")).scalar()
    finally:
        database.dispose()


@pytest.fixture
def at_0003_with_a_locked_event(empty_pg_url):
    """A database at 0003 with one session event whose typed text 0004 rewrites, and a connection
    holding that row's lock (an end-of-session event being recorded, a purge) until released."""
    database = Database(empty_pg_url)
    upgrade(database.engine, "0003")
    with database.engine.begin() as conn:
        conn.execute(text("INSERT INTO ussd_session_events (session_id, last_input, created_at, updated_at) "
                          "VALUES ('ATUid_1', '1*12345678*4826', now(), now())"))
    holder = database.engine.connect()
    holder.execute(text("SELECT id FROM ussd_session_events FOR UPDATE"))
    yield database, holder
    holder.close()
    database.dispose()


def test_an_upgrade_blocked_behind_a_lock_gives_up_with_a_clear_message(at_0003_with_a_locked_event):
    import time

    from registry.migrate import MigrationBlocked

    database, holder = at_0003_with_a_locked_event
    pauses: list[float] = []
    started = time.monotonic()
    with pytest.raises(MigrationBlocked) as blocked:
        upgrade(database.engine, lock_timeout_ms=200, attempts=3, sleep=pauses.append)
    # 3 waits of 0.2 s, not a hang behind the holder: a bound on a hang (Alembic's start, three
    # tries and their connections take about 1 s, several times that on a loaded host), not on speed
    assert time.monotonic() - started < 60
    assert pauses == [2, 4]
    message = str(blocked.value)
    assert "gave up after 3 tries" in message and "revision 0003" in message and "pg_stat_activity" in message
    assert "UPDATE ussd_session_events" in message and "`elimu db upgrade` again" in message
    assert _revision(database.engine) == "0003"  # the schema is whole: 0004 is not half recorded
    holder.rollback()
    upgrade(database.engine)
    assert _revision(database.engine) == revisions()[-1]  # the head


def test_an_upgrade_retries_once_the_lock_is_let_go(at_0003_with_a_locked_event):
    database, holder = at_0003_with_a_locked_event
    pauses: list[float] = []

    def pause(seconds: float) -> None:
        pauses.append(seconds)
        holder.rollback()  # the other session ends while the upgrade waits to retry

    upgrade(database.engine, lock_timeout_ms=200, sleep=pause)
    assert pauses == [2]
    assert _revision(database.engine) == revisions()[-1]
    with database.engine.connect() as conn:
        assert conn.execute(text("SELECT last_input FROM ussd_session_events")).scalar() == "1*[8]*[4]"


def test_the_invalid_index_a_concurrent_build_gave_up_on_is_rebuilt_by_the_next_run(empty_pg_url):
    """A CONCURRENTLY build waits for the transactions writing the table; given up, it leaves an
    invalid index behind (kept up to date by every write, used by no query), which the next run
    drops and builds again where `IF NOT EXISTS` alone would keep it as it is."""
    from registry.migrate import MigrationBlocked

    database = Database(empty_pg_url)
    writer = None
    try:
        upgrade(database.engine, "0002")
        writer = database.engine.connect()
        writer.execute(text("INSERT INTO outbound_messages (recipient, kind, body, priority, status, attempts, "
                            "created_at, updated_at) VALUES ('+254712345678', 'reply', 'x', 'sms-reply', 'queued', "
                            "0, now(), now())"))
        with pytest.raises(MigrationBlocked, match="ix_outbound_messages_unconfirmed"):
            upgrade(database.engine, concurrent_lock_timeout_ms=200, attempts=2, sleep=lambda seconds: None)
        assert _revision(database.engine) == "0002"
        with database.engine.connect() as conn:  # the writer is still there: the drop waits for it too
            assert conn.execute(text("SELECT count(*) FROM pg_index WHERE NOT indisvalid")).scalar() == 1
        writer.commit()
        upgrade(database.engine)
        assert _revision(database.engine) == revisions()[-1]
        assert pending_changes(database.engine) == []
        with database.engine.connect() as conn:
            assert not conn.execute(text("SELECT count(*) FROM pg_index WHERE NOT indisvalid")).scalar()
    finally:
        if writer is not None:
            writer.close()
        database.dispose()


def test_an_upgrade_waits_for_one_holding_the_migration_lock_across_its_revisions(empty_pg_url):
    """The lock is a session's, not a transaction's: each revision commits on its own now."""
    import threading
    import time

    from registry.migrate import MIGRATION_LOCK, POLL_S

    database = Database(empty_pg_url)
    other = database.engine.connect()
    pauses: list[float] = []
    refused = threading.Event()

    def pause(seconds: float) -> None:  # the upgrade found the lock held: a state, not a duration
        pauses.append(seconds)
        refused.set()
        time.sleep(seconds)

    try:
        other.execute(text("SELECT pg_advisory_lock(:key)"), {"key": MIGRATION_LOCK})
        other.commit()
        thread = threading.Thread(target=upgrade, args=(database.engine,), kwargs={"sleep": pause})
        thread.start()
        deadline = time.monotonic() + 60  # bounds a hang only
        while not refused.wait(0.01):
            assert thread.is_alive(), "the upgrade ended without finding the migration lock held"
            assert time.monotonic() < deadline, "the upgrade did not try the migration lock within 60 s"
        assert thread.is_alive() and pauses[0] == POLL_S  # and it cannot end while the lock is held
        assert "alembic_version" not in inspect(database.engine).get_table_names()
        other.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": MIGRATION_LOCK})
        other.commit()
        thread.join(30)
        assert not thread.is_alive()
        assert _revision(database.engine) == revisions()[-1]
    finally:
        other.close()
        database.dispose()


def test_the_command_says_an_upgrade_was_blocked_in_one_line(monkeypatch, tmp_path):
    from click.testing import CliRunner

    from gateway import cli as cli_module
    from gateway.cli import database as db_cli
    from registry.migrate import MigrationBlocked

    def blocked(engine, **limits):  # noqa: ANN001, ANN003, ARG001
        assert limits == {"lock_timeout_ms": 500}
        raise MigrationBlocked("gave up after 5 tries: … The schema is at revision 0003, whole and usable")

    class FakeRuntime:
        db = Database(f"sqlite:///{tmp_path / 'x.sqlite3'}")

    monkeypatch.setattr(db_cli, "upgrade", blocked)
    monkeypatch.setattr(cli_module.Context, "runtime", property(lambda self: FakeRuntime()))
    result = CliRunner().invoke(cli_module.cli, ["db", "upgrade", "--lock-timeout", "500"])
    assert result.exit_code == 3, result.output
    assert result.output.startswith("Error: schema upgrade blocked: gave up after 5 tries")
    assert "revision 0003" in result.output and "Traceback" not in result.output


def test_a_downgrade_command_takes_the_schema_back(tmp_path, monkeypatch):
    from click.testing import CliRunner

    from gateway import cli as cli_module

    database = Database(f"sqlite:///{tmp_path / 'x.sqlite3'}")

    class FakeRuntime:
        db = database

    monkeypatch.setattr(cli_module.Context, "runtime", property(lambda self: FakeRuntime()))
    try:
        upgrade(database.engine)
        result = CliRunner().invoke(cli_module.cli, ["db", "downgrade", "0001"])
        assert result.exit_code == 0, result.output
        assert _revision(database.engine) == "0001"
        assert "ix_outbound_messages_status_next" in _index_names(database.engine)
    finally:
        database.dispose()


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_a_database_at_0004_gets_the_pin_sessions_table_and_back(backend, tmp_path, request):
    """0005 adds ``pin_sessions`` (where an account last entered its PIN) beside the accounts it
    refers to; erasing an account's guardian row takes its row with it; a downgrade drops it."""
    url = f"sqlite:///{tmp_path / 'old.sqlite3'}" if backend == "sqlite" else request.getfixturevalue("empty_pg_url")
    database = Database(url)
    try:
        upgrade(database.engine, "0004")
        with database.engine.begin() as conn:
            conn.execute(text("INSERT INTO guardians (id, phone, pin_failures, created_at, updated_at) "
                              "VALUES (1, '+254712345678', 0, CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"))
        upgrade(database.engine, "0005")
        assert _revision(database.engine) == "0005"
        with database.engine.begin() as conn:
            if backend == "sqlite":
                conn.execute(text("PRAGMA foreign_keys = ON"))
            conn.execute(text("INSERT INTO pin_sessions (guardian_id, session_id, verified_at) "
                              "VALUES (1, 'ATUid_1', CURRENT_TIMESTAMP)"))
            conn.execute(text("DELETE FROM guardians"))
            assert conn.execute(text("SELECT count(*) FROM pin_sessions")).scalar() == 0
        downgrade(database.engine, "0004")
        assert "pin_sessions" not in inspect(database.engine).get_table_names()
        assert _revision(database.engine) == "0004"
    finally:
        database.dispose()


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_a_database_at_0005_gets_announcement_cancelled_at_and_back(backend, tmp_path, request):
    """0006 adds ``announcements.cancelled_at`` (null for every announcement made before it); a
    downgrade drops it and keeps the announcements."""
    url = f"sqlite:///{tmp_path / 'old.sqlite3'}" if backend == "sqlite" else request.getfixturevalue("empty_pg_url")
    database = Database(url)
    try:
        upgrade(database.engine, "0005")
        with database.engine.begin() as conn:
            conn.execute(text("INSERT INTO announcements (id, institution_code, body, recipients, created_at, "
                              "updated_at) VALUES (1, 'WE4T', 'Closing day', 2, CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"))
        upgrade(database.engine)
        assert _revision(database.engine) == revisions()[-1] and pending_changes(database.engine) == []
        with database.engine.begin() as conn:
            assert conn.execute(text("SELECT cancelled_at FROM announcements")).all() == [(None,)]
        downgrade(database.engine, "0005")
        assert "cancelled_at" not in {c["name"] for c in inspect(database.engine).get_columns("announcements")}
        with database.engine.begin() as conn:
            assert conn.execute(text("SELECT body FROM announcements")).scalar() == "Closing day"
        assert _revision(database.engine) == "0005"
    finally:
        database.dispose()


def _audit_index_names(engine) -> set[str]:
    """The indexes of ``audit_events`` (from the catalogue: SQLite's inspector skips an expression index)."""
    query = ("SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'audit_events'"
             if engine.dialect.name == "sqlite" else
             "SELECT indexname FROM pg_indexes WHERE tablename = 'audit_events' AND schemaname = current_schema()")
    with engine.connect() as conn:
        return set(conn.execute(text(query)).scalars())


# The audit trail's expression indexes: (revision, its index, the rows it finds by ``history``, the
# same expression as SQLite compiles it, which its planner must take the index for).
_AUDIT_INDEXES = {
    "0007": ("ix_audit_events_index_number", {"index_number": "36611030002"},
             "SELECT id FROM audit_events WHERE substr(detail, instr(detail, ' ') + instr(substr(detail, "
             "instr(detail, ' ') + 1), ' ') + 1) = '36611030002'"),
    "0008": ("ix_audit_events_series", {"series": ("KCSE", 2025)},
             "SELECT id FROM audit_events WHERE substr(detail, 1, instr(detail, ' ') + instr(substr(detail, "
             "instr(detail, ' ') + 1), ' ') - 1) = 'KCSE 2025' ORDER BY at DESC, id DESC"),
}


@pytest.mark.parametrize("revision", sorted(_AUDIT_INDEXES))
@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_a_database_gets_an_audit_expression_index_and_back(backend, revision, tmp_path, request):
    """0007 indexes the third word of each audit row's detail (a results reply's number), 0008 its
    first two (the series) before its time, which ``history`` then asks for; on PostgreSQL each is
    built and dropped CONCURRENTLY, outside a transaction; a downgrade drops it and keeps the rows."""
    from registry.services.audit import history

    index, filters, sqlite_query = _AUDIT_INDEXES[revision]
    before = revisions()[revisions().index(revision) - 1]
    url = f"sqlite:///{tmp_path / 'old.sqlite3'}" if backend == "sqlite" else request.getfixturevalue("empty_pg_url")
    database = Database(url)
    try:
        upgrade(database.engine, before)
        with database.engine.begin() as conn:
            conn.execute(text("INSERT INTO audit_events (at, phone, action, channel, reference, detail) VALUES "
                              "(CURRENT_TIMESTAMP, '+447700900123', 'results_replied', 'sms', '7', "
                              "'KCSE 2025 36611030002'), (CURRENT_TIMESTAMP, '+254712345678', 'results_replied', "
                              "'sms', '8', 'KCSE 2024 36611030009'), (CURRENT_TIMESTAMP, '+254712345678', "
                              "'status_shown', 'ussd', 'ATUid_1', NULL)"))
        assert index not in _audit_index_names(database.engine)
        seen = _pg_statements(database.engine) if backend == "postgresql" else []
        upgrade(database.engine, revision)
        assert index in _audit_index_names(database.engine)
        later = {name for rev, (name, _, _) in _AUDIT_INDEXES.items() if rev > revision} | {"unlinked_at"}  # 0009's
        assert {(change[3] if change[0] == "add_column" else change[1]).name
                for change in pending_changes(database.engine)} <= later
        with database.session() as s:
            assert [e.phone for e, _ in history(s, **filters)] == ["+447700900123"]
        if backend == "sqlite":  # SQLite's planner takes the index for the same expression, too
            with database.engine.connect() as conn:
                plan = str(conn.execute(text(f"EXPLAIN QUERY PLAN {sqlite_query}")).all())
            assert index in plan and "TEMP B-TREE" not in plan, plan
        downgrade(database.engine, before)
        assert index not in _audit_index_names(database.engine)
        assert _revision(database.engine) == before
        with database.session() as s:  # the same rows, read the long way
            assert [e.phone for e, _ in history(s, **filters)] == ["+447700900123"]
            assert len(history(s, phone="+254712345678")) == 2
        ddl = [(sql, autocommit) for sql, autocommit in seen if " INDEX " in f" {sql} " and "pg_index" not in sql]
        assert [sql.split(" ON ")[0] for sql, _ in ddl] == ([
            f"CREATE INDEX CONCURRENTLY IF NOT EXISTS {index}",
            f"DROP INDEX CONCURRENTLY IF EXISTS {index}"] if backend == "postgresql" else []), ddl
        assert all(autocommit for _, autocommit in ddl), ddl
    finally:
        database.dispose()


def test_the_audit_index_is_built_and_dropped_concurrently_outside_a_transaction(empty_pg_url):
    """The audit trail is written on every disclosure (a million results replies a results day):
    its index is built without the ``SHARE`` lock a plain ``CREATE INDEX`` holds against them."""
    database = Database(empty_pg_url)
    try:
        upgrade(database.engine, "0006")
        seen = _pg_statements(database.engine)
        upgrade(database.engine, "0007")
        downgrade(database.engine, "0006")
        ddl = [(sql, autocommit) for sql, autocommit in seen
               if " INDEX " in f" {sql} " and "pg_index" not in sql]
        assert [sql.split(" ON ")[0] for sql, _ in ddl] == [
            "CREATE INDEX CONCURRENTLY IF NOT EXISTS ix_audit_events_index_number",
            "DROP INDEX CONCURRENTLY IF EXISTS ix_audit_events_index_number"], ddl
        assert all(autocommit for _, autocommit in ddl), ddl
        assert "split_part(detail, ' ', 3)" in ddl[0][0]
        # each under the concurrent builds' lock timeout, not the session's 1 s
        before_build = [sql for sql, _ in seen[:seen.index(ddl[0])] if sql.startswith("SET lock_timeout")]
        assert before_build[-1] == "SET lock_timeout = 30000", before_build
        with database.engine.connect() as conn:
            assert not conn.execute(text("SELECT count(*) FROM pg_index WHERE NOT indisvalid")).scalar()
    finally:
        database.dispose()



def _at(backend: str, when: str) -> str:
    """A time as each backend stores it (SQLite: as SQLAlchemy writes a ``DateTime``, text)."""
    return f"'{when}.000000'" if backend == "sqlite" else f"'{when}+00'"


def _utc(value):  # noqa: ANN001, ANN202 - a datetime or None
    """A stored time as naive UTC (SQLite's come back naive, PostgreSQL's aware)."""
    from datetime import UTC

    if value is None or value.tzinfo is None:
        return value
    return value.astimezone(UTC).replace(tzinfo=None)


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_a_database_at_0008_gets_guardian_unlinked_at_and_back(backend, tmp_path, request):
    """0009 adds ``guardians.unlinked_at``, filled for the guardians already with no link from the
    later of the phone's last unlink audit row and the row's last change, and the trigger that sets
    it when a learner's deletion takes a guardian's last link; a downgrade drops both and keeps
    every link and PIN session (SQLite: no batch copy of ``guardians``, whose cascade would take them)."""
    from datetime import datetime

    from registry.models import Guardian

    url = f"sqlite:///{tmp_path / 'old.sqlite3'}" if backend == "sqlite" else request.getfixturevalue("empty_pg_url")
    database = Database(url)
    old, older, unlinked = _at(backend, "2020-01-01 00:00:00"), _at(backend, "2019-06-01 00:00:00"), "2021-03-04 05:06:07"
    try:
        upgrade(database.engine, "0008")
        with database.engine.begin() as conn:
            conn.execute(text(f"INSERT INTO institutions (id, code, name, county_code, created_at, updated_at) "
                              f"VALUES (1, 'WE4T', 'Kamukunji High', '047', {old}, {old})"))
            conn.execute(text("INSERT INTO learners (id, upi, first_name, last_name, date_of_birth, gender, grade, "
                              "institution_id, enrolment_state, created_at, updated_at) VALUES "
                              f"(1, 'ABC234', 'Jane', 'Wanjiku', '2010-01-02', 'F', 'Form 3', 1, 'enrolled', {old}, {old})"))
            conn.execute(text("INSERT INTO guardians (id, phone, pin_failures, created_at, updated_at) VALUES "
                              f"(1, '+254700000001', 0, {old}, {old}), (2, '+254700000002', 0, {old}, {old}), "
                              f"(3, '+254700000003', 0, {old}, {old}), (4, '+254700000004', 0, {old}, {old})"))
            conn.execute(text("INSERT INTO guardian_links (learner_id, guardian_id, relationship, created_at, updated_at) "
                              f"VALUES (1, 1, 'mother', {old}, {old})"))
            conn.execute(text(f"INSERT INTO pin_sessions (guardian_id, session_id, verified_at) VALUES (1, 'ATUid_1', {old})"))
            conn.execute(text("INSERT INTO audit_events (at, phone, action, channel) VALUES "
                              f"({_at(backend, unlinked)}, '+254700000002', 'guardian_unlinked', 'cli'), "
                              f"({older}, '+254700000002', 'guardian_unlinked', 'cli'), "
                              f"({older}, '+254700000003', 'guardian_unlinked', 'cli'), "
                              f"({_at(backend, unlinked)}, '+254700000004', 'status_shown', 'ussd')"))
        upgrade(database.engine)
        assert _revision(database.engine) == revisions()[-1] and pending_changes(database.engine) == []

        def unlinked_at() -> dict[str, object]:
            with database.session() as s:
                return {phone: _utc(at) for phone, at in s.execute(select(Guardian.phone, Guardian.unlinked_at))}

        assert unlinked_at() == {
            "+254700000001": None,  # linked
            "+254700000002": datetime(2021, 3, 4, 5, 6, 7),  # its last unlink, after its row's last change
            "+254700000003": datetime(2020, 1, 1),  # its row changed after its unlink
            "+254700000004": datetime(2020, 1, 1),  # no unlink recorded: its row's last change
        }
        with database.engine.begin() as conn:
            conn.execute(text("DELETE FROM learners"))
        assert unlinked_at()["+254700000001"].date() == datetime.now().date()  # noqa: DTZ005 - the date alone

        with database.engine.begin() as conn:
            conn.execute(text("INSERT INTO learners (id, upi, first_name, last_name, date_of_birth, gender, grade, "
                              "institution_id, enrolment_state, created_at, updated_at) VALUES "
                              f"(2, 'DEF567', 'Jane', 'Wanjiku', '2010-01-02', 'F', 'Form 3', 1, 'enrolled', {old}, {old})"))
            conn.execute(text("INSERT INTO guardian_links (learner_id, guardian_id, relationship, created_at, updated_at) "
                              f"VALUES (2, 1, 'mother', {old}, {old})"))
        downgrade(database.engine, "0008")
        assert _revision(database.engine) == "0008"
        assert "unlinked_at" not in {c["name"] for c in inspect(database.engine).get_columns("guardians")}
        with database.engine.begin() as conn:
            assert conn.execute(text("SELECT count(*) FROM guardians")).scalar() == 4
            assert conn.execute(text("SELECT count(*) FROM guardian_links")).scalar() == 1
            assert conn.execute(text("SELECT count(*) FROM pin_sessions")).scalar() == 1
            conn.execute(text("DELETE FROM learners"))  # no trigger left to write a column that is gone
            assert conn.execute(text("SELECT count(*) FROM guardian_links")).scalar() == 0
    finally:
        database.dispose()


def _unlinked_trigger(engine) -> list[str]:
    """The definition of the trigger (and on PostgreSQL its function) that sets ``unlinked_at``."""
    query = ("SELECT sql FROM sqlite_master WHERE type = 'trigger' AND tbl_name = 'guardian_links'"
             if engine.dialect.name == "sqlite" else
             "SELECT pg_get_triggerdef(t.oid) || ' ' || pg_get_functiondef(t.tgfoid) FROM pg_trigger t "
             "WHERE t.tgrelid = 'guardian_links'::regclass AND NOT t.tgisinternal")
    with engine.connect() as conn:
        return sorted(conn.execute(text(query)).scalars())


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_the_migrated_schema_and_the_models_hold_the_same_unlinked_trigger(backend, tmp_path, request):
    """Autogenerate compares no trigger: a schema made from the models (the tests') must get the one
    0009 makes, as ``registry.models.unlinking`` declares it."""
    url = f"sqlite:///{tmp_path / 'old.sqlite3'}" if backend == "sqlite" else request.getfixturevalue("empty_pg_url")
    migrated = Database(url)
    made = (Database(f"sqlite:///{tmp_path / 'made.sqlite3'}") if backend == "sqlite"
            else request.getfixturevalue("pg_database"))
    try:
        if backend == "sqlite":
            Base.metadata.create_all(made.engine)
        upgrade(migrated.engine)
        found = _unlinked_trigger(migrated.engine)
        assert len(found) == 1 and "unlinked_at" in found[0]
        assert _unlinked_trigger(made.engine) == found
    finally:
        migrated.dispose()
        if backend == "sqlite":
            made.dispose()


def test_0009_retried_after_its_backfill_gave_up_on_a_lock_ends_at_the_head(empty_pg_url):
    """0009 commits its column and trigger before its backfill; a backfill that gives up on a row
    lock (a guardian with no link being written) is retried as every revision is, and the retry
    finds the column and the trigger there already, not a DuplicateColumn for ever after."""
    database = Database(empty_pg_url)
    try:
        upgrade(database.engine, "0008")
        with database.engine.begin() as conn:
            conn.execute(text("INSERT INTO guardians (id, phone, pin_failures, created_at, updated_at) VALUES "
                              "(1, '+254700000001', 0, now(), now())"))
        holder = database.engine.connect()

        def lock_first(conn, cursor, statement, *args) -> None:  # noqa: ANN001 - an engine event's
            if statement.startswith("UPDATE guardians SET unlinked_at") and not pauses:
                holder.execute(text("SELECT id FROM guardians FOR UPDATE"))  # once the column has committed

        pauses: list[float] = []
        event.listen(database.engine, "before_cursor_execute", lock_first)

        def pause(seconds: float) -> None:
            pauses.append(seconds)
            holder.rollback()  # the other session ends while the upgrade waits to retry

        try:
            upgrade(database.engine, lock_timeout_ms=200, sleep=pause)
        finally:
            event.remove(database.engine, "before_cursor_execute", lock_first)
            holder.close()
        assert pauses == [2]
        assert _revision(database.engine) == revisions()[-1] and pending_changes(database.engine) == []
        assert len(_unlinked_trigger(database.engine)) == 1
        with database.engine.connect() as conn:
            assert conn.execute(text("SELECT unlinked_at IS NOT NULL FROM guardians")).scalar() is True
    finally:
        database.dispose()
