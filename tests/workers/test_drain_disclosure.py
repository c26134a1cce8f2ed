"""A UPI text naming a learner deleted while it waited is ended, not sent."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import delete, select

from registry.models import AuditEvent, Learner, MessageKind, MessageStatus, OutboundMessage
from registry.outbox import queue_sms
from registry.services.audit import record_disclosure
from registry.services.withdrawals import UNVERIFIED
from tests.sms.support import add_guardian, add_institution, add_learner, verify
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


def _delete(session: Any) -> None:
    session.execute(delete(Learner).where(Learner.upi == PETER))


def _in_order(rows: Any) -> list[tuple[str, int | None, str]]:
    return sorted((tuple(row) for row in rows), key=lambda r: (r[0], r[1] or 0))


def _withdrawn(runtime: Any) -> list[tuple[str, int | None, str]]:
    with runtime.db.session() as session:
        return _in_order(session.execute(select(AuditEvent.reference, AuditEvent.learner_id, AuditEvent.detail)
                                          .where(AuditEvent.action == "disclosure_withdrawn")))


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
