"""A transfer notice committing at the same moment as an unlink of one of its phones (PostgreSQL,
two transactions at once, a real worker on a real Redis)."""

from __future__ import annotations

import pytest
from sqlalchemy import select, text

from registry.models import AuditEvent, Learner, MessageKind, MessageStatus, OutboundMessage
from registry.services.guardian_links import unlink_guardian
from registry.services.notices import notify_guardians
from registry.services.withdrawals import UNVERIFIED
from tests.sms.support import add_guardian, add_institution, add_learner, job_runtime, verify, work_queues
from workers.backends.outbox import INBOX_KEY

pytestmark = [pytest.mark.postgres, pytest.mark.redis]
WRONG, MOTHER = "+254712345678", "+254722111222"


def test_a_notice_queued_while_its_phone_is_unlinked_is_not_sent(tmp_path, pg_database, real_redis, redis_url):
    """The transfer reads the learner's verified phones and queues a notice naming her to each; the
    unlink of one phone commits before the transfer does, so it cannot see (and withdraw) that
    phone's notice. The worker, taking the notice, finds the phone no longer verified for her: the
    notice ends failed, unsent, recorded as withdrawn; her other phone's goes."""
    with pg_database.transaction() as session:
        jane = add_learner(session, add_institution(session), first="Jane", last="Kamau")
        for phone in (WRONG, MOTHER):
            add_guardian(session, phone, jane, active=True)
            verify(session, phone, jane)
        upi = jane.upi
    with job_runtime(tmp_path, pg_database, real_redis, redis_url) as runtime:
        with pg_database.transaction() as transfer:
            learner = transfer.scalars(select(Learner).where(Learner.upi == upi)).one()
            assert notify_guardians(transfer, learner, "released", school="Kilimani Primary",
                                    other="Kisumu Lakeside") == 2
            with pg_database.transaction() as unlink:  # commits first: the notices are not visible to it
                unlink.execute(text("SET LOCAL lock_timeout = '5s'"))
                assert unlink_guardian(unlink, upi, WRONG, by="test").withdrawn == 0
        work_queues(runtime)

    with pg_database.session() as session:
        rows = {m.recipient: m for m in session.scalars(select(OutboundMessage))}
        withdrawn = session.execute(select(AuditEvent.phone, AuditEvent.reference, AuditEvent.learner_id)
                                    .where(AuditEvent.action == "disclosure_withdrawn")).all()
    assert {m.kind for m in rows.values()} == {MessageKind.NOTICE}
    assert (rows[WRONG].status, rows[WRONG].failure_reason) == (MessageStatus.FAILED, UNVERIFIED)
    assert rows[WRONG].submitted_at is None and rows[WRONG].attempts == 0  # never handed to the provider
    assert rows[MOTHER].status not in (MessageStatus.QUEUED, MessageStatus.FAILED)
    assert real_redis.llen(INBOX_KEY.format(phone=WRONG)) == 0
    assert real_redis.llen(INBOX_KEY.format(phone=MOTHER)) == 1
    assert [(phone, ref) for phone, ref, _ in withdrawn] == [(WRONG, str(rows[WRONG].id))]
    assert withdrawn[0][2] is not None
