"""The Alembic migrations build the schema on SQLite and PostgreSQL, and agree with the models."""

from __future__ import annotations

import uuid

import pytest
from alembic import command
from sqlalchemy import create_engine, inspect, text
from sqlalchemy.engine import make_url

from registry.db import Database
from registry.migrate import alembic_config, pending_changes, upgrade
from registry.models import Base
from tests.conftest import PG_URL, _unavailable


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
        cfg = alembic_config(url)
        with database.engine.begin() as conn:
            cfg.attributes["connection"] = conn
            command.downgrade(cfg, "0001")
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
