"""A UPI message queued at the same moment as an unlink of its phone: ended at the worker's claim
(PostgreSQL, two transactions at once, a real worker on a real Redis; and the claim's check on SQLite)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import event, select, text

from registry.models import AuditEvent, Learner, MessageKind, MessageStatus, OutboundMessage
from registry.outbox import queue_sms
from registry.services.accounts import _send_upi
from registry.services.audit import record_disclosure
from registry.services.guardian_links import unlink_guardian
from registry.services.withdrawals import UNVERIFIED
from tests.sms.support import add_guardian, add_institution, add_learner, job_runtime, verify, work_queues
from workers.backends.outbox import INBOX_KEY
from workers.sending import claim

WRONG, MOTHER = "+254712345678", "+254722111222"


@pytest.mark.postgres
@pytest.mark.redis
def test_a_upi_queued_while_its_phone_is_unlinked_is_not_sent(tmp_path, pg_database, real_redis, redis_url):
    """The request reads the phone's link as verified and queues the UPI (audited ``upi_sent`` with
    the session, not the message); the unlink commits before it does, so it cannot see (and
    withdraw) the message. The worker, taking it, finds the phone no longer verified for the learner
    its UPI names: ended failed, unsent, recorded as withdrawn; the mother's goes."""
    with pg_database.transaction() as session:
        jane = add_learner(session, add_institution(session), first="Jane", last="Kamau", upi="ZQ6NFN")
        for phone in (WRONG, MOTHER):
            add_guardian(session, phone, jane, active=True)
            verify(session, phone, jane)
    with job_runtime(tmp_path, pg_database, real_redis, redis_url) as runtime:
        with pg_database.transaction() as request:
            learner = request.scalars(select(Learner).where(Learner.upi == "ZQ6NFN")).one()
            for phone in (WRONG, MOTHER):
                _send_upi(request, phone, learner, f"ussd-{phone}", datetime.now(UTC))
            with pg_database.transaction() as unlink:  # commits first: the UPI message is not visible to it
                unlink.execute(text("SET LOCAL lock_timeout = '5s'"))
                assert unlink_guardian(unlink, "ZQ6NFN", WRONG, by="test").withdrawn == 0
        work_queues(runtime)

    with pg_database.session() as session:
        rows = {m.recipient: m for m in session.scalars(select(OutboundMessage))}
        withdrawn = session.execute(select(AuditEvent.phone, AuditEvent.reference, AuditEvent.learner_id,
                                           AuditEvent.detail).where(AuditEvent.action == "disclosure_withdrawn")).all()
        jane_id = session.scalars(select(Learner.id).where(Learner.upi == "ZQ6NFN")).one()
    assert {m.kind for m in rows.values()} == {MessageKind.UPI}
    assert (rows[WRONG].status, rows[WRONG].failure_reason) == (MessageStatus.FAILED, UNVERIFIED)
    assert rows[WRONG].submitted_at is None and rows[WRONG].attempts == 0  # never handed to the provider
    assert rows[MOTHER].status not in (MessageStatus.QUEUED, MessageStatus.FAILED)
    assert real_redis.llen(INBOX_KEY.format(phone=WRONG)) == 0
    assert real_redis.llen(INBOX_KEY.format(phone=MOTHER)) == 1
    assert withdrawn == [(WRONG, str(rows[WRONG].id), jane_id, f"upi {UNVERIFIED}")]


@contextmanager
def _statements(database: Any) -> Iterator[list[str]]:
    seen: list[str] = []

    def count(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, executemany: bool) -> None:
        seen.append(statement)

    event.listen(database.engine, "before_cursor_execute", count)
    try:
        yield seen
    finally:
        event.remove(database.engine, "before_cursor_execute", count)


def _upi(session: Any, phone: str, body: str, *learners: Learner) -> int:
    """A UPI message as the replies write it: its audit rows name the inbound message, not it."""
    message = queue_sms(session, phone, MessageKind.UPI, body)
    for learner in learners:
        record_disclosure(session, phone=phone, learner_id=learner.id, action="upi_sent", channel="sms",
                          reference="inbound-7")
    return message.id


def test_the_claim_ends_a_upi_message_unless_its_phone_is_verified_for_every_learner_it_names(runtime):
    """A message naming two learners goes only while the phone is verified for both; a word of its
    text that is another learner's UPI names nobody; one naming no learner the phone was sent goes
    nowhere. One query checks a batch of UPI messages, none a batch without."""
    db = runtime.db
    with db.transaction() as session:
        school = add_institution(session)
        jane = add_learner(session, school, first="Jane", upi="ZQ6NFN")
        peter = add_learner(session, school, first="Peter", upi="ZKA8MQ")
        other = add_learner(session, school, first="Other", upi="K")  # an imported UPI: a masked name's initial
        add_guardian(session, WRONG, jane, peter, active=True)
        verify(session, WRONG, jane, peter)
        add_guardian(session, MOTHER, jane, active=True)
        verify(session, MOTHER, jane)
        both = _upi(session, WRONG, "UPI: Jane K. ZQ6NFN; Peter K. ZKA8MQ", jane, peter)
        mother = _upi(session, MOTHER, "UPI: Jane K. ZQ6NFN", jane)
        unknown = _upi(session, MOTHER, "UPI: Somebody K. ZZZZZZ")
        other_id = other.id
        later = _upi(session, WRONG, "UPI: Jane K. ZQ6NFN; Peter K. ZKA8MQ", jane, peter)
        notice_free = [queue_sms(session, MOTHER, kind, body).id for kind, body in
                       ((MessageKind.ANNOUNCEMENT, "School opens on Monday"), (MessageKind.REPLY, "HELP: dial *384#"))]
    with db.transaction() as session:  # Peter's link is no longer verified (unlinked after queuing)
        unlink_guardian(session, "ZKA8MQ", WRONG, by="test")
    with db.transaction() as session:  # the unlink withdrew the queued ones: put one back as the race leaves it
        session.execute(OutboundMessage.__table__.update().where(OutboundMessage.id == later)
                        .values(status=MessageStatus.QUEUED, failure_reason=None))

    with db.transaction() as session, _statements(db) as seen:
        assert {c.id for c in claim(session, notice_free, {}, "test")} == set(notice_free)
    assert not [s for s in seen if "audit_events" in s]  # no check for a batch without UPI messages
    with db.transaction() as session, _statements(db) as seen:
        sent = claim(session, [later, mother, unknown], {}, "test")
    assert [c.id for c in sent] == [mother]  # Jane's UPI with "K" in the text: Other is not named
    assert len([s for s in seen if s.lstrip().upper().startswith("SELECT")]) == 1

    with db.session() as session:
        rows = {m.id: m for m in session.scalars(select(OutboundMessage))}
        withdrawn = session.execute(select(AuditEvent.reference, AuditEvent.learner_id).where(
            AuditEvent.action == "disclosure_withdrawn", AuditEvent.detail == f"upi {UNVERIFIED}")).all()
    for ended in (later, unknown):
        assert (rows[ended].status, rows[ended].failure_reason, rows[ended].attempts) == (
            MessageStatus.FAILED, UNVERIFIED, 0)
    assert rows[mother].status is MessageStatus.SUBMITTED
    assert rows[both].status is MessageStatus.FAILED  # withdrawn by the unlink itself, not by the claim
    assert sorted(withdrawn, key=lambda r: (int(r[0]), r[1] or 0)) == [
        (str(unknown), None), (str(later), jane.id), (str(later), peter.id)]
    assert other_id not in {learner for _, learner in withdrawn}
