"""The inbound drain's UPI replies checked at send time, as a worker's claim checks queued rows: a
phone unlinked, erased, or left by a learner deleted between the drain's commit and its send gets
no UPI, and a UPI text naming a learner deleted while it waited is ended, not sent."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from sqlalchemy import delete, event, select

from registry.models import AuditEvent, Learner, MessageKind, MessageStatus, OutboundMessage
from registry.outbox import queue_sms
from registry.services.audit import record_disclosure
from registry.services.guardian_links import unlink_guardian
from registry.services.subject_rights import erase
from registry.services.withdrawals import UNVERIFIED
from tests.sms.support import add_guardian, add_institution, add_learner, add_result, verify
from workers import inbound
from workers.backends.outbox import INBOX_KEY
from workers.sending import claim

PARENT = "+254722111222"
JANE, PETER = "ZQ6NFN", "ZKA8MQ"


def _family(runtime: Any) -> dict[str, int]:
    """A parent verified for two learners (Jane and Peter), as the USSD activation leaves it."""
    with runtime.db.transaction() as session:
        school = add_institution(session)
        jane = add_learner(session, school, first="Jane", last="Kamau", upi=JANE)
        peter = add_learner(session, school, first="Peter", last="Kamau", upi=PETER)
        add_guardian(session, PARENT, jane, peter, active=True)
        verify(session, PARENT, jane, peter)
        return {JANE: jane.id, PETER: peter.id}


def _unlink(session: Any) -> None:
    unlink_guardian(session, PETER, PARENT, by="test")


def _erase(session: Any) -> None:
    erase(session, PARENT)


def _delete(session: Any) -> None:
    session.execute(delete(Learner).where(Learner.upi == PETER))


@contextmanager
def _statements(runtime: Any) -> Iterator[list[str]]:
    seen: list[str] = []

    def note(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, executemany: bool) -> None:
        seen.append(" ".join(statement.split()))

    event.listen(runtime.db.engine, "before_cursor_execute", note)
    try:
        yield seen
    finally:
        event.remove(runtime.db.engine, "before_cursor_execute", note)


def _in_order(rows: Any) -> list[tuple[str, int | None, str]]:
    return sorted((tuple(row) for row in rows), key=lambda r: (r[0], r[1] or 0))


def _withdrawn(runtime: Any) -> list[tuple[str, int | None, str]]:
    with runtime.db.session() as session:
        return _in_order(session.execute(select(AuditEvent.reference, AuditEvent.learner_id, AuditEvent.detail)
                                          .where(AuditEvent.action == "disclosure_withdrawn")))


@pytest.mark.postgres
@pytest.mark.redis
@pytest.mark.parametrize("between", [_unlink, _erase, _delete], ids=["unlink-guardian", "privacy-erase",
                                                                      "learner-deleted"])
def test_a_drain_reply_is_checked_when_the_phone_loses_its_learner_after_the_commit(
        integration_runtime, monkeypatch, between: Callable[[Any], None]):
    """The drain answers ``UPI`` in its batch transaction, writing the reply already claimed; the
    unlink (erase, deletion) commits after that and before the send, so it cannot withdraw the reply
    (in flight to it). The drain, sending, finds the phone no longer verified for every learner the
    text names: ended failed, never handed to AT, the withdrawal audited."""
    runtime = integration_runtime
    learners = _family(runtime)
    real_answer = inbound.answer

    def answer_then_race(rt: Any, ids: Any) -> list:
        claimed = real_answer(rt, ids)  # committed: the reply is submitted, the upi_sent rows written
        assert [c.kind for c in claimed] == [MessageKind.UPI]
        with rt.db.transaction() as session:
            between(session)
        return claimed

    monkeypatch.setattr(inbound, "answer", answer_then_race)
    message = inbound.receive(runtime, provider_id="race-1", sender=PARENT, text="UPI")
    runtime.redis.delete(inbound.PENDING_KEY)  # this test drives the batch itself
    inbound.handle_batch(runtime, [message])

    with runtime.db.session() as session:
        [reply] = session.scalars(select(OutboundMessage)).all()
    assert (reply.kind, reply.status, reply.failure_reason) == (MessageKind.UPI, MessageStatus.FAILED, UNVERIFIED)
    assert reply.attempts == 0 and reply.submitted_at is None and reply.accepted_at is None
    assert runtime.redis.llen(INBOX_KEY.format(phone=PARENT)) == 0
    peter = None if between is _delete else learners[PETER]
    assert _withdrawn(runtime) == _in_order([(str(reply.id), learners[JANE], f"upi {UNVERIFIED}"),
                                             (str(reply.id), peter, f"upi {UNVERIFIED}")])


@pytest.mark.postgres
@pytest.mark.redis
def test_a_drain_reply_still_verified_goes_and_a_results_batch_pays_no_check(integration_runtime):
    """Nothing changed after the commit: the UPI text goes, after one query (its batch holds a UPI
    message); a batch of results replies goes with no query before its send."""
    runtime = integration_runtime
    _family(runtime)
    with runtime.db.transaction() as session:
        add_result(session)
    upi = inbound.receive(runtime, provider_id="upi-1", sender=PARENT, text="UPI")
    results = [inbound.receive(runtime, provider_id=f"kcse-{n}", sender=f"+25471100000{n}",
                               text="KCSE 36611030002 Wanjiku") for n in range(3)]
    runtime.redis.delete(inbound.PENDING_KEY)

    for ids, checks in (([upi], 1), (results, 0)):
        claimed = inbound.answer(runtime, ids)
        assert len(claimed) == len(ids)
        with _statements(runtime) as seen:
            inbound.send_replies(runtime, claimed)
        before_send = seen[:next(i for i, s in enumerate(seen) if s.startswith("UPDATE"))]
        assert len([s for s in before_send if s.startswith("SELECT")]) == checks, before_send

    assert runtime.redis.llen(INBOX_KEY.format(phone=PARENT)) == 1
    with runtime.db.session() as session:
        statuses = set(session.scalars(select(OutboundMessage.status)))
    assert statuses == {MessageStatus.DELIVERED}
    assert _withdrawn(runtime) == []


def _upi_text(session: Any, body: str, *learners: Learner) -> int:
    """A UPI message as the SMS replies write it: its audit rows name the inbound SMS, not it."""
    message = queue_sms(session, PARENT, MessageKind.UPI, body)
    for learner in learners:
        record_disclosure(session, phone=PARENT, learner_id=learner.id, action="upi_sent", channel="sms",
                          reference="inbound-9")
    return message.id


@pytest.mark.postgres
@pytest.mark.redis
def test_a_two_learner_upi_text_waiting_while_one_learner_is_deleted_is_ended(integration_runtime):
    """The deletion nulls the learner of its ``upi_sent`` rows and drops its links, so the text's
    other UPI still names a learner the phone is verified for; yet the text carries the deleted
    learner's UPI too. It is ended and audited, not sent; a text naming only the learner left goes."""
    runtime = integration_runtime
    learners = _family(runtime)
    with runtime.db.transaction() as session:
        jane, peter = (session.get(Learner, learners[upi]) for upi in (JANE, PETER))
        both = _upi_text(session, f"UPI: Jane K. {JANE}; Peter K. {PETER}", jane, peter)
        alone = _upi_text(session, f"UPI: Jane K. {JANE}", jane)
    with runtime.db.transaction() as session:
        _delete(session)

    with runtime.db.transaction() as session:
        sent = claim(session, [both, alone], {}, "test")
    assert [c.id for c in sent] == [alone]
    with runtime.db.session() as session:
        row = session.get(OutboundMessage, both)
        assert (row.status, row.failure_reason, row.attempts) == (MessageStatus.FAILED, UNVERIFIED, 0)
    assert _withdrawn(runtime) == _in_order([(str(both), learners[JANE], f"upi {UNVERIFIED}"),
                                             (str(both), None, f"upi {UNVERIFIED}")])


def test_a_upi_text_of_one_learner_whose_name_holds_the_separator_goes(runtime):
    """A school's file may give a first name with '; ' in it (two names run together): the text of
    that one learner, by SMS or by USSD, still lists one learner, is sent, and no withdrawal naming
    nobody is recorded; a UPI of a deleted learner beside it still ends the text."""
    from registry.models import utcnow
    from registry.services.accounts import _send_upi
    from registry.services.sms_replies import _upi_reply

    with runtime.db.transaction() as session:
        school = add_institution(session)
        akinyi = add_learner(session, school, first="Akinyi; Grace", last="Otieno", upi=JANE)
        add_guardian(session, PARENT, akinyi, active=True)
        verify(session, PARENT, akinyi)
        by_sms = queue_sms(session, PARENT, MessageKind.UPI, _upi_reply(session, PARENT, 9, "en", "*384#").text).id
        _send_upi(session, PARENT, akinyi, "ATUid_1", utcnow())
        by_ussd = session.scalar(select(OutboundMessage.id).where(OutboundMessage.id != by_sms))
        texts = [session.get(OutboundMessage, i).body for i in (by_sms, by_ussd)]
        with_gone = _upi_text(session, f"UPI: Akinyi; Grace O. {JANE}; Peter K. {PETER}", akinyi)
        akinyi_id = akinyi.id
    assert all("Akinyi; Grace" in body for body in texts)

    with runtime.db.transaction() as session:
        sent = claim(session, [by_sms, by_ussd, with_gone], {}, "test")
    assert sorted(c.id for c in sent) == sorted([by_sms, by_ussd])
    assert _withdrawn(runtime) == _in_order([(str(with_gone), akinyi_id, f"upi {UNVERIFIED}"),
                                             (str(with_gone), None, f"upi {UNVERIFIED}")])
