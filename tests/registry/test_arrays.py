"""registry.arrays: IN and multi-row INSERT whose statement text does not grow with the batch
(on PostgreSQL, arrays), the same answers as the usual forms on SQLite; and the batched audit."""

from __future__ import annotations

import psycopg._queries
import pytest
from psycopg.adapt import PyFormat
from psycopg.types.array import ListBinaryDumper
from sqlalchemy import event, select

from registry.arrays import BinaryArray, among, binary_array, insert_rows, update_rows
from registry.models import AuditEvent, MessageKind, MessageStatus, OutboundMessage, utcnow
from registry.models.messages import Priority
from registry.services.audit import batched_disclosures, record_disclosure

_T = OutboundMessage.__table__


def _outbox_rows(count: int) -> list[dict]:
    now = utcnow()
    return [{"recipient": f"+2547120{n:05d}", "kind": MessageKind.REPLY, "body": f"reply {n}",
             "priority": Priority.REPLY, "status": MessageStatus.QUEUED, "next_attempt_at": now} for n in range(count)]


def test_insert_rows_returns_every_row_and_applies_column_defaults(database) -> None:
    with database.transaction() as session:
        inserted = insert_rows(session, _T, _outbox_rows(3), [OutboundMessage.id, OutboundMessage.priority])
        assert sorted(priority for _, priority in inserted) == [Priority.REPLY.value] * 3  # plain values
        rows = session.execute(select(OutboundMessage).order_by(OutboundMessage.id)).scalars().all()
    assert sorted(message_id for message_id, _ in inserted) == [row.id for row in rows]
    assert [row.body for row in rows] == ["reply 0", "reply 1", "reply 2"]
    assert all(row.attempts == 0 and row.created_at is not None and row.kind is MessageKind.REPLY for row in rows)
    assert insert_rows(session, _T, [], [OutboundMessage.id]) == []


def test_insert_rows_sends_the_values_every_row_shares_once(database) -> None:
    due = utcnow()
    rows = [{"recipient": f"+2547120{n:05d}", "kind": "reply", "body": f"reply {n}", "priority": "sms-reply"}
            for n in range(3)]
    seen: list[dict] = []  # the INSERT's parameters
    listener = lambda conn, cursor, sql, params, *rest: sql.startswith("INSERT") and seen.append(params)  # noqa: E731
    event.listen(database.engine, "before_cursor_execute", listener)
    try:
        with database.transaction() as session:
            insert_rows(session, _T, rows, status=MessageStatus.FAILED, next_attempt_at=due)
            found = session.execute(select(OutboundMessage).order_by(OutboundMessage.id)).scalars().all()
    finally:
        event.remove(database.engine, "before_cursor_execute", listener)
    assert [(m.body, m.kind, m.status) for m in found] == [
        (f"reply {n}", MessageKind.REPLY, MessageStatus.FAILED) for n in range(3)]
    assert all(m.next_attempt_at.replace(tzinfo=None) == due.replace(tzinfo=None) and m.created_at for m in found)
    if not database.is_sqlite:  # one value for the batch, not an array of copies
        assert seen[-1]["c_status"] == "failed" and seen[-1]["c_next_attempt_at"] == due
        assert "status" not in seen[-1] and len(seen[-1]["recipient"]) == 3


def _found(session, column, values) -> list[int]:
    """The ids of the outbox rows whose ``column`` is among ``values``, in order."""
    return list(session.scalars(select(OutboundMessage.id).where(among(session, column, values))
                                .order_by(OutboundMessage.id)))


def test_among_matches_ints_strings_and_enums_like_in(database) -> None:
    with database.transaction() as session:
        insert_rows(session, _T, _outbox_rows(4))
        ids = session.scalars(select(OutboundMessage.id).order_by(OutboundMessage.id)).all()

        assert _found(session, OutboundMessage.id, [ids[3], ids[1], 10**9]) == [ids[1], ids[3]]
        assert _found(session, OutboundMessage.recipient, {"+254712000002"}) == [ids[2]]
        assert _found(session, OutboundMessage.kind, [MessageKind.REPLY]) == ids
        assert _found(session, OutboundMessage.kind, [MessageKind.OTP]) == []
        assert _found(session, OutboundMessage.id, []) == []


def test_on_postgresql_among_sends_plain_strings_and_ints_in_binary_and_the_index_still_serves(pg_database) -> None:
    """A list of plain strings, or of plain ints, goes to psycopg as a ``BinaryArray`` (its binary
    format: a fifth of the CPU of text); enums, bools and mixed lists as before; the answers are
    those of IN, and a ``varchar`` column compared with the ``text[]`` it becomes keeps its index."""
    sent: list[object] = []
    listener = lambda conn, cursor, sql, params, *rest: "ANY" in sql and sent.append(params)  # noqa: E731
    event.listen(pg_database.engine, "before_cursor_execute", listener)
    try:
        with pg_database.transaction() as session:
            insert_rows(session, _T, _outbox_rows(4))
            ids = session.scalars(select(OutboundMessage.id).order_by(OutboundMessage.id)).all()

            assert _found(session, OutboundMessage.id, [ids[3], ids[1], 10**12]) == [ids[1], ids[3]]
            assert _found(session, OutboundMessage.recipient, ["+254712000002", "+254712000003", 'a "quoted", {odd} one']) == ids[2:]
            assert _found(session, OutboundMessage.kind, [MessageKind.REPLY]) == ids
            assert _found(session, OutboundMessage.id, [True]) == [i for i in ids if i == 1]  # no plain int: sent as before
            assert _found(session, OutboundMessage.recipient, []) == []
            connection = session.connection()
            adapters = connection.connection.dbapi_connection.adapters  # the engine's connections dump it in binary
            assert adapters.get_dumper(BinaryArray, PyFormat.AUTO) is ListBinaryDumper
            connection.exec_driver_sql("SET LOCAL enable_seqscan = off")  # a small table: the index if it can
            explained = "\n".join(connection.exec_driver_sql(
                "EXPLAIN SELECT id FROM outbound_messages WHERE recipient = ANY(%(r)s)",
                {"r": binary_array(["+254712000002"])}).scalars())
    finally:
        event.remove(pg_database.engine, "before_cursor_execute", listener)
    kinds = [type(next(iter(params.values()))) for params in sent if isinstance(params, dict) and len(params) == 1]
    assert kinds[:3] == [BinaryArray, BinaryArray, list]  # ids, recipients, then the enum members
    assert kinds[3] is list and kinds[4] in (list, BinaryArray)  # the bool; an empty list says nothing of its kind
    assert "ix_outbound_messages_recipient" in explained, explained


def test_on_postgresql_the_text_is_the_same_for_any_batch_and_psycopg_caches_it(pg_database, monkeypatch) -> None:
    def never(*args, **kwargs):
        raise AssertionError("psycopg parsed a statement too long to cache")

    monkeypatch.setattr(psycopg._queries, "_query2pg_nocache", never)
    with pg_database.transaction() as session:
        bind = session.get_bind()
        texts = {str(select(OutboundMessage.id).where(among(session, OutboundMessage.id, range(n))).compile(bind))
                 for n in (1, 200)}
        assert len(texts) == 1
        ids = [i for i, _ in insert_rows(session, _T, _outbox_rows(200), [OutboundMessage.id, OutboundMessage.priority])]
        assert len(ids) == 200
        assert len(session.scalars(select(OutboundMessage.id).where(among(session, OutboundMessage.id, ids))).all()) == 200


def test_batched_disclosures_are_written_at_the_end_of_the_block_in_one_go(database) -> None:
    with database.transaction() as session:
        with batched_disclosures(session):
            for n in range(3):
                record_disclosure(session, phone="+254712345678", learner_id=None, action="results_replied",
                                  channel="sms", reference=str(n))
            assert session.scalars(select(AuditEvent)).all() == []  # nothing yet
        record_disclosure(session, phone="+254712345678", learner_id=None, action="upi_sent", channel="ussd")
        events = session.scalars(select(AuditEvent).order_by(AuditEvent.id)).all()
    assert [(e.action, e.reference) for e in events] == [
        ("results_replied", "0"), ("results_replied", "1"), ("results_replied", "2"), ("upi_sent", None)]


def test_a_batch_that_fails_writes_no_disclosure(database) -> None:
    with database.transaction() as session:
        with pytest.raises(RuntimeError), batched_disclosures(session):
            record_disclosure(session, phone="+254712345678", learner_id=None, action="results_replied", channel="sms")
            raise RuntimeError("the replies failed")
        record_disclosure(session, phone="+254712345678", learner_id=None, action="upi_sent", channel="ussd")
        events = session.scalars(select(AuditEvent)).all()  # the batch mode did not stay on
    assert [e.action for e in events] == ["upi_sent"]


def test_update_rows_sets_each_rows_values_and_the_shared_ones_where_the_condition_holds(database) -> None:
    sent = utcnow()
    with database.transaction() as session:
        insert_rows(session, _T, _outbox_rows(4))
        ids = session.scalars(select(OutboundMessage.id).order_by(OutboundMessage.id)).all()
        session.execute(_T.update().where(_T.c.id == ids[3]).values(status=MessageStatus.FAILED))
        update_rows(session, _T, [{"id": ids[0], "provider_message_id": "ATXid_1", "cost": "KES 0.8"},
                                  {"id": ids[1], "provider_message_id": None, "cost": None},
                                  {"id": ids[3], "provider_message_id": "ATXid_3", "cost": "KES 0.8"}],
                    where={"status": MessageStatus.QUEUED}, status=MessageStatus.SUBMITTED,
                    accepted_at=sent)
        update_rows(session, _T, [])
        rows = session.execute(select(OutboundMessage).order_by(OutboundMessage.id)).scalars().all()
    assert [(r.status, r.provider_message_id, r.cost, r.accepted_at is not None) for r in rows] == [
        (MessageStatus.SUBMITTED, "ATXid_1", "KES 0.8", True),
        (MessageStatus.SUBMITTED, None, None, True),
        (MessageStatus.QUEUED, None, None, False),  # not in the batch
        (MessageStatus.FAILED, None, None, False),  # in the batch, but the condition does not hold
    ]


def test_on_postgresql_update_rows_is_one_statement(pg_database) -> None:
    with pg_database.transaction() as session:
        insert_rows(session, _T, _outbox_rows(50))
        ids = session.scalars(select(OutboundMessage.id)).all()
        seen: list[str] = []
        listener = lambda conn, cursor, statement, *rest: seen.append(statement)  # noqa: E731
        event.listen(pg_database.engine, "before_cursor_execute", listener)
        try:
            update_rows(session, _T, [{"id": i, "failure_reason": f"r{i}"} for i in ids])
        finally:
            event.remove(pg_database.engine, "before_cursor_execute", listener)
        reasons = dict(session.execute(select(OutboundMessage.id, OutboundMessage.failure_reason)).all())
    assert len(seen) == 1 and "unnest" in seen[0]
    assert reasons == {i: f"r{i}" for i in ids}


def test_a_driver_without_psycopgs_adapters_is_left_alone():
    """``postgresql+psycopg2://`` given explicitly: its connections have no ``adapters``; the engine's
    connect hook leaves them as they are instead of failing every connection."""
    from registry.arrays import send_binary_arrays

    class Psycopg2Connection:  # what matters of one: no ``adapters``
        pass

    send_binary_arrays(Psycopg2Connection())
