"""registry.db.Database.fetch: one autocommit statement, on PostgreSQL sent on the driver's own
connection, with the same rows, the same errors and the same handling of a lost connection as
SQLAlchemy's own execution."""

from __future__ import annotations

import pytest
from sqlalchemy import event, select, text
from sqlalchemy.exc import DBAPIError, IntegrityError

from gateway.degraded import is_outage
from registry.db import Direct
from registry.models import Guardian, InboundMessage, MessageKind, OutboundMessage, utcnow
from registry.models.messages import MessageStatus, Priority
from registry.services.accounts import _CALLER
from workers.inbound import _insert_once


def _inbound(provider_id: str) -> dict:
    now = utcnow()
    return {"provider_id": provider_id, "sender": "+254712000001", "text": "KCSE 36611030002 Wanjiku",
            "short_code": "22252", "link_id": None, "network_code": "63902", "received_at": now,
            "created_at": now, "updated_at": now}


def _sqlalchemy_executions(database) -> list[str]:
    """Statements SQLAlchemy executes on the autocommit engine from now on (the direct path runs none)."""
    seen: list[str] = []
    engine = database.engine if database.is_sqlite else database.autocommit_engine
    event.listen(engine, "before_cursor_execute", lambda conn, cursor, statement, *rest: seen.append(statement))
    return seen


def test_fetch_inserts_once_and_commits_without_a_transaction(database) -> None:
    insert = _insert_once(database.engine.dialect.name)
    first = database.fetch(insert, _inbound("ATXid_1"))
    assert len(first) == 1 and isinstance(first[0][0], int)
    assert database.fetch(insert, _inbound("ATXid_1")) == []  # ON CONFLICT DO NOTHING: no row returned
    assert database.fetch(text("DELETE FROM inbound_messages WHERE id = -1"), {}) == []  # a statement without rows
    with database.transaction() as session:  # another connection sees it: committed on its own
        assert session.scalars(select(InboundMessage.id)).all() == [first[0][0]]


def test_fetch_reads_the_same_rows_as_sqlalchemy(database) -> None:
    locked = utcnow()
    with database.transaction() as session:
        session.add(Guardian(phone="+254700000009", pin_locked_until=locked))
    with database.autocommit() as connection:
        expected = [tuple(row) for row in connection.execute(_CALLER, {"phone": "+254700000009"})]
    assert database.fetch(_CALLER, {"phone": "+254700000009"}) == expected
    assert database.fetch(_CALLER, {"phone": "+254799999999"}) == [(None, False, None, False)]


def test_on_postgresql_the_hot_statements_skip_sqlalchemys_execution(pg_database) -> None:
    seen = _sqlalchemy_executions(pg_database)
    pg_database.fetch(_CALLER, {"phone": "+254700000009"})
    pg_database.fetch(_insert_once("postgresql"), _inbound("ATXid_2"))
    assert seen == []
    dialect = pg_database.autocommit_engine.dialect
    assert Direct.of(_CALLER, dialect) is not None
    assert Direct.of(_CALLER, dialect).defaults  # the literals compiled into it (LIMIT 1...)


def test_a_statement_sqlalchemy_must_convert_runs_through_it(pg_database) -> None:
    """Enum columns come back as enums only through SQLAlchemy: such a statement is not sent directly."""
    with pg_database.transaction() as session:
        session.add(OutboundMessage(recipient="+254712000001", kind=MessageKind.REPLY, body="hi",
                                    priority=Priority.REPLY, status=MessageStatus.QUEUED))
    kinds = select(OutboundMessage.kind, OutboundMessage.status)
    assert Direct.of(kinds, pg_database.autocommit_engine.dialect) is None
    seen = _sqlalchemy_executions(pg_database)
    assert pg_database.fetch(kinds, {}) == [(MessageKind.REPLY, MessageStatus.QUEUED)]
    assert len(seen) == 1
    expanding = select(Guardian.id).where(Guardian.phone.in_(["+254700000009"]))
    assert Direct.of(expanding, pg_database.autocommit_engine.dialect) is None


def test_driver_errors_arrive_wrapped_as_sqlalchemy_wraps_them(database) -> None:
    broken = _insert_once(database.engine.dialect.name)
    with pytest.raises(IntegrityError):  # sender is NOT NULL
        database.fetch(broken, _inbound("ATXid_3") | {"sender": None})
    assert database.fetch(broken, _inbound("ATXid_3"))  # the pool's connection is still good


def test_a_connection_the_server_dropped_is_an_outage_and_is_replaced(pg_database) -> None:
    pid = pg_database.fetch(text("SELECT pg_backend_pid()"), {})[0][0]
    with pg_database.engine.connect() as admin:
        admin.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
        admin.commit()
    with pytest.raises(DBAPIError) as caught:
        pg_database.fetch(_CALLER, {"phone": "+254700000009"})  # on the same pooled connection, just dropped
    assert caught.value.connection_invalidated and is_outage(caught.value)
    assert pg_database.fetch(text("SELECT pg_backend_pid()"), {})[0][0] != pid  # a fresh connection


# --- the connection each thread keeps -----------------------------------------------------------


def _backend_pid(database) -> int:
    return database.fetch(text("SELECT pg_backend_pid()"), {})[0][0]


def test_a_thread_keeps_one_connection_and_other_threads_their_own(pg_database) -> None:
    import threading

    first = _backend_pid(pg_database)
    assert [_backend_pid(pg_database) for _ in range(5)] == [first] * 5
    assert pg_database.autocommit_engine.pool.checkedout() == 1  # kept, not returned after each statement
    seen: list[int] = []
    worker = threading.Thread(target=lambda: seen.extend(_backend_pid(pg_database) for _ in range(3)))
    worker.start()
    worker.join()
    assert len(set(seen)) == 1 and seen[0] != first


def test_a_kept_connection_idle_and_dropped_meanwhile_is_replaced_before_use(pg_database, monkeypatch) -> None:
    from registry import db as db_module

    pid = _backend_pid(pg_database)
    with pg_database.engine.connect() as admin:
        admin.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
        admin.commit()
    monkeypatch.setattr(db_module, "IDLE_PING_S", 0.0)  # idle long enough to be pinged before use
    assert pg_database.fetch(_CALLER, {"phone": "+254700000009"}) == [(None, False, None, False)]  # no error
    assert _backend_pid(pg_database) != pid


def test_a_kept_connection_s_cursor_is_reused_and_replaced_with_it(pg_database) -> None:
    first = _backend_pid(pg_database)
    cursor = pg_database._kept.cursor
    assert _backend_pid(pg_database) == first and pg_database._kept.cursor is cursor  # one cursor, reused
    with pg_database.engine.connect() as admin:
        admin.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": first})
        admin.commit()
    with pytest.raises(DBAPIError):
        _backend_pid(pg_database)
    assert _backend_pid(pg_database) != first and pg_database._kept.cursor is not cursor


def test_a_kept_connection_lost_while_the_server_is_away_is_replaced_once_it_is_back(pg_database,
                                                                                    monkeypatch) -> None:
    """The drill's PostgreSQL outage: the idle kept connection fails its ping, and so does the
    reconnect (the server is still away). That is an outage like any other, and once the server is
    back the thread's next statement runs, instead of every later one failing on the dead connection."""
    import psycopg

    from registry import db as db_module

    pid = _backend_pid(pg_database)
    with pg_database.engine.connect() as admin:
        admin.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
        admin.commit()
    monkeypatch.setattr(db_module, "IDLE_PING_S", 0.0)
    engine = pg_database.autocommit_engine

    def refused() -> None:
        raise psycopg.OperationalError("connection failed: Connection refused")

    monkeypatch.setattr(engine, "raw_connection", refused)
    with pytest.raises(DBAPIError) as caught:
        pg_database.fetch(_CALLER, {"phone": "+254700000009"})
    assert is_outage(caught.value)
    monkeypatch.undo()
    assert pg_database.fetch(_CALLER, {"phone": "+254700000009"}) == [(None, False, None, False)]
