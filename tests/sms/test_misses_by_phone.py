"""A batch's senders' results misses (``sms_replies.misses_since``): the same counts on PostgreSQL
and SQLite, and on PostgreSQL read phone by phone through the trail's index of phone and time."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import event, text

from registry.models import utcnow
from registry.services.audit import record_failed_check
from registry.services.sms_replies import MISS_ACTION, REFUSED_ACTION, misses_since


def _trail(session, now) -> None:
    for phone, action, hours in [("+254711000001", MISS_ACTION, 1), ("+254711000001", MISS_ACTION, 2),
                                 ("+254711000001", MISS_ACTION, 30), ("+254711000001", REFUSED_ACTION, 1),
                                 ("+254711000002", MISS_ACTION, 3), ("+254711000009", MISS_ACTION, 1)]:
        record_failed_check(session, phone=phone, action=action, channel="sms", at=now - timedelta(hours=hours),
                            detail="KCSE 2025 20000000001")


def test_each_senders_misses_since_are_counted(database):
    now = utcnow()
    with database.transaction() as session:
        _trail(session, now)
    with database.session() as session:
        counts = misses_since(session, ["+254711000001", "+254711000002", "+254711000003"], now - timedelta(days=1))
        assert counts == {"+254711000001": 2, "+254711000002": 1, "+254711000003": 0}
        assert misses_since(session, [], now) == {}


def test_on_postgresql_the_misses_are_read_by_the_phones_index_whatever_the_statistics(pg_database):
    """Statistics taken while the trail was small had the one IN over a batch's senders scan the whole
    trail for each batch; each phone is now counted through ``ix_audit_events_phone``."""
    now = utcnow()
    with pg_database.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.execute(text("ANALYZE audit_events"))  # before the trail grew
        connection.execute(text(
            "INSERT INTO audit_events (at, phone, action, channel, detail) "
            "SELECT now() - n * interval '1 second', '+2547150' || lpad(n::text, 5, '0'), 'results_replied', 'sms', "
            "'KCSE 2025 20000000001' FROM generate_series(1, 12000) AS n"))
    with pg_database.transaction() as session:
        _trail(session, now)
    statements: list[tuple[str, object]] = []

    def seen(conn, cursor, statement, parameters, context, executemany):
        statements.append((statement, parameters))

    phones = ["+254711000001", "+254711000002"] + [f"+2547150{n:05d}" for n in range(1, 199)]
    event.listen(pg_database.engine, "before_cursor_execute", seen)
    try:
        with pg_database.session() as session:
            counts = misses_since(session, phones, now - timedelta(days=1))
    finally:
        event.remove(pg_database.engine, "before_cursor_execute", seen)
    assert counts["+254711000001"] == 2 and counts["+254711000002"] == 1
    assert sum(counts.values()) == 3 and len(counts) == 200
    statement, parameters = statements[-1]
    with pg_database.engine.connect() as connection:
        plan = "\n".join(row[0] for row in connection.exec_driver_sql(f"EXPLAIN {statement}", parameters))
    assert "Seq Scan on audit_events" not in plan, plan
    assert "ix_audit_events_phone" in plan, plan
