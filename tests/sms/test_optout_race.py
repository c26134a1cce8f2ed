"""STOP racing a school announcement that is being written (PostgreSQL, two transactions at once)."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import select

from registry.models import Institution, MessageStatus, OutboundMessage
from registry.outbox import OPTED_OUT
from registry.services.announcements import announce
from registry.services.sms_replies import set_opted_out
from tests.sms.support import add_guardian, add_institution, add_learner
from workers.sending import claim

pytestmark = pytest.mark.postgres
PHONE, OTHER = "+254712345678", "+254722000111"


def test_a_stop_committed_while_an_announcement_is_written_keeps_its_message_from_going_out(pg_database):
    """The announcement reads its recipients, then a STOP from one of them commits (its cancel cannot
    see the rows not committed yet), then the announcement commits: the phone's row must not be
    claimed for sending; it ends failed as opted out, the other phone's goes."""
    with pg_database.transaction() as session:
        school = add_institution(session)
        add_guardian(session, PHONE, add_learner(session, school))
        add_guardian(session, OTHER, add_learner(session, school, first="Amani"))
        school_id = school.id
    written, stopped = threading.Event(), threading.Event()
    errors: list[BaseException] = []

    def announcing() -> None:
        def progress(done: int, total: int) -> None:
            written.set()  # the rows are inserted, not committed
            assert stopped.wait(10)

        try:
            with pg_database.transaction() as session:
                announce(session, session.get(Institution, school_id), "Term dates", progress=progress)
        except BaseException as exc:  # noqa: BLE001 - raised in the test's thread
            errors.append(exc)
            written.set()

    thread = threading.Thread(target=announcing)
    thread.start()
    assert written.wait(10)
    with pg_database.transaction() as session:
        set_opted_out(session, PHONE, True)
    stopped.set()
    thread.join(10)
    assert not errors
    with pg_database.transaction() as session:
        ids = list(session.scalars(select(OutboundMessage.id).order_by(OutboundMessage.id)))
        claimed = claim(session, ids, {}, "outbox")
    assert [c.recipient for c in claimed] == [OTHER]
    with pg_database.session() as session:
        rows = {m.recipient: m for m in session.scalars(select(OutboundMessage))}
    assert (rows[PHONE].status, rows[PHONE].failure_reason) == (MessageStatus.FAILED, OPTED_OUT)
    assert rows[OTHER].status is MessageStatus.SUBMITTED
