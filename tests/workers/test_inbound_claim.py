"""The drain's claim on PostgreSQL: rows locked, not written, until the one UPDATE that answers them."""

from __future__ import annotations

from sqlalchemy import event, select, text

from registry.models import InboundMessage, MessageStatus, OutboundMessage
from workers import inbound


def _received(runtime, count: int) -> list[int]:
    return [inbound.receive(runtime, provider_id=f"claim-{n}", sender=f"+25471100000{n}", text="HELP")
            for n in range(count)]


def _inbound(runtime) -> dict[int, tuple]:
    with runtime.db.session() as session:
        rows = session.execute(select(InboundMessage.id, InboundMessage.command, InboundMessage.handled_at))
        return {row.id: (row.command, row.handled_at) for row in rows}


def test_a_row_another_drain_holds_is_left_to_it(integration_runtime):
    runtime = integration_runtime
    first, second = _received(runtime, 2)
    with runtime.db.engine.connect() as other:  # another drain, mid-batch, holding the first row
        other.execute(text("SELECT id FROM inbound_messages WHERE id = :id FOR UPDATE"), {"id": first})
        claimed = inbound.answer(runtime, [first, second])
        other.rollback()
    assert len(claimed) == 1
    rows = _inbound(runtime)
    assert rows[first] == (None, None)
    assert rows[second][0] == "help" and rows[second][1] is not None
    assert len(inbound.answer(runtime, [first, second])) == 1  # the first, once released; the second not again
    assert {command for command, _ in _inbound(runtime).values()} == {"help"}


def test_each_row_is_written_once_and_each_reply_claimed_at_insert(integration_runtime):
    runtime = integration_runtime
    ids = _received(runtime, 3)
    statements: list[str] = []

    def seen(conn, cursor, statement, parameters, context, executemany):
        statements.append(" ".join(statement.split()))

    event.listen(runtime.db.engine, "before_cursor_execute", seen)
    try:
        claimed = inbound.answer(runtime, ids)
    finally:
        event.remove(runtime.db.engine, "before_cursor_execute", seen)
    writes = [s.split(" SET ")[0].split(" (")[0] for s in statements if s.startswith(("UPDATE", "INSERT"))]
    assert sorted(writes) == ["INSERT INTO \"outbound_messages\"", "UPDATE \"inbound_messages\" AS t"]
    assert any("FOR UPDATE SKIP LOCKED" in s for s in statements)
    assert all(handled is not None for _, handled in _inbound(runtime).values())
    with runtime.db.session() as session:
        replies = session.scalars(select(OutboundMessage).order_by(OutboundMessage.id)).all()
    assert [c.id for c in claimed] == [r.id for r in replies]
    assert {(r.status, r.attempts, r.provider) for r in replies} == {(MessageStatus.SUBMITTED, 1, "outbox")}


def test_the_claim_reads_its_rows_by_their_ids_whatever_the_statistics_say(integration_runtime):
    """Statistics taken while no text waited (as at the start of a results day) say the partial index
    of unhandled rows is nearly empty; a claim whose statement says ``handled_at IS NULL`` was then
    planned on it, reading the whole backlog for each batch. Its plan, as PostgreSQL makes it for the
    statement and values the drain sends, does not read that index, and rows handled are not claimed."""
    runtime = integration_runtime
    with runtime.db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.execute(text("ANALYZE inbound_messages"))  # before the burst
    ids = [inbound.receive(runtime, provider_id=f"burst-{n}", sender=f"+2547120{n:05d}", text="HELP")
           for n in range(1500)]
    claims: list[tuple[str, object]] = []

    def seen(conn, cursor, statement, parameters, context, executemany):
        if "FOR UPDATE SKIP LOCKED" in statement:
            claims.append((statement, parameters))

    event.listen(runtime.db.engine, "before_cursor_execute", seen)
    try:
        assert len(inbound.answer(runtime, ids[700:900])) == 200
        assert inbound.answer(runtime, ids[700:702]) == []  # handled: not claimed again
    finally:
        event.remove(runtime.db.engine, "before_cursor_execute", seen)
    statement, parameters = claims[0]
    with runtime.db.engine.connect() as connection:
        plan = "\n".join(row[0] for row in connection.exec_driver_sql(f"EXPLAIN {statement}", parameters))
    assert "ix_inbound_messages_unhandled" not in plan, plan  # by the primary key, or a scan of this small table


def test_the_batch_marks_its_texts_handled_by_their_ids_not_by_a_hash_of_every_text(integration_runtime):
    """The one UPDATE that records a batch's commands joins the batch to its rows: without a condition
    on the table alone PostgreSQL hashed every text of a table of some thousands (a full scan, 10 ms a
    batch against 16,000 texts; it failed here so), now it finds the rows by the primary key."""
    runtime = integration_runtime
    with runtime.db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.execute(text(  # a results day's texts already answered: a table a scan is no longer cheap on
            "INSERT INTO inbound_messages (provider_id, sender, text, command, handled_at, created_at, updated_at) "
            "SELECT 'answered-' || n, '+2547140' || lpad(n::text, 5, '0'), 'HELP', 'help', now(), now(), now() "
            "FROM generate_series(1, 12000) AS n"))
        connection.execute(text("ANALYZE inbound_messages"))
    ids = [inbound.receive(runtime, provider_id=f"marks-{n}", sender=f"+2547130{n:05d}", text="HELP")
           for n in range(200)]
    updates: list[tuple[str, object]] = []

    def seen(conn, cursor, statement, parameters, context, executemany):
        if statement.startswith('UPDATE "inbound_messages"'):
            updates.append((statement, parameters))

    event.listen(runtime.db.engine, "before_cursor_execute", seen)
    try:
        assert len(inbound.answer(runtime, ids)) == 200
    finally:
        event.remove(runtime.db.engine, "before_cursor_execute", seen)
    statement, parameters = updates[0]
    with runtime.db.engine.connect() as connection:
        plan = "\n".join(row[0] for row in connection.exec_driver_sql(f"EXPLAIN {statement}", parameters))
    assert "Seq Scan on inbound_messages" not in plan, plan
    assert "pk_inbound_messages" in plan, plan
