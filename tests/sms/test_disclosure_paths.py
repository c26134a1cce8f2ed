"""The disclosure audit: every path by which learner data leaves the service, one test (or more) each.

House rules checked: no learner datum to a phone the registry has not verified (except results by
index number + one of the candidate's names, CONTRACT "SMS commands"); names masked (``Jane W.``);
OTPs and PINs only as salted hashes; every disclosure an audit row that holds no more than it needs.
"""

from __future__ import annotations

import io
import logging

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from gateway.logs import JsonFormatter, RedactingFilter, RedactingFormatter
from registry.models import AuditEvent, Institution, MessageKind, MessageStatus, OutboundMessage
from registry.services.retention import PURGED
from registry.services.subject_rights import erase
from registry.services.transfers import release
from tests.sms.support import add_guardian, add_institution, add_learner, verify, work_queues
from workers.context import queues_of
from workers.queues import SendJob

PARENT = "+254712345678"
STRANGER = "+254733000222"


def _school_with_verified_parent(session):
    school = add_institution(session, code="WE4T", name="Kilimani Primary")
    jane = add_learner(session, school, first="Jane", last="Wanjiku", upi="QW7E9R")
    add_guardian(session, PARENT, jane, active=True)
    verify(session, PARENT, jane)
    return school, jane


# --- SMS notices ---------------------------------------------------------------------------------


def test_a_notice_still_queued_when_the_phone_is_erased_is_not_sent(sms_runtime):
    """A transfer notice names the learner and the school; it was queued while the phone was verified.
    Once the phone's data is erased (e.g. the number was given up and reassigned) it is no longer
    verified, so the notice (or a retry of it) must not reach it: it is withdrawn with the erasure."""
    runtime = sms_runtime
    runtime.db.dispatch = None  # the notice stays queued, as it does behind a busy queue or a retry interval
    with runtime.db.transaction() as s:
        _school_with_verified_parent(s)
        release(s, "QW7E9R")
    with runtime.db.transaction() as s:
        erased = erase(s, PARENT)
    assert erased.waiting_messages == 0
    with runtime.db.session() as s:
        notice = s.scalars(select(OutboundMessage).where(OutboundMessage.kind == MessageKind.NOTICE)).one()
        assert notice.status is MessageStatus.FAILED and notice.body == PURGED
        assert "erased" in (notice.failure_reason or "")
    queues_of(runtime).enqueue_sends([SendJob(notice.id, notice.priority.value)])  # a job already queued
    work_queues(runtime)
    with runtime.db.session() as s:
        assert s.get(OutboundMessage, notice.id).status is MessageStatus.FAILED
        assert s.scalars(select(AuditEvent.action).where(AuditEvent.action == "transfer_notice")).all()


# --- logs ----------------------------------------------------------------------------------------


def test_a_logged_database_error_carries_no_row_values(pg_database):
    """Statement parameters are hidden (``hide_parameters``), but PostgreSQL's own DETAIL line quotes
    the row or key that failed (``Key (upi)=(QW7E9R) already exists``, ``Failing row contains (...)``);
    a traceback logged by the degraded handler, the inbound drain or the worker must not carry it."""
    with pg_database.transaction() as s:
        school = add_institution(s)
        add_learner(s, school, first="Wambui", last="Kariuki", upi="QW7E9R")
    errors = []
    failing = (("QW7E9R", "Achieng", "Njeri"), ("ZX8C4V", "Achieng", None))  # a UPI taken; no last name
    for upi, first, last in failing:  # (the traceback quotes the failing call's line: values by name)
        try:
            with pg_database.transaction() as s:
                add_learner(s, s.get(Institution, school.id), first=first, last=last, upi=upi)
        except IntegrityError as exc:
            errors.append(exc)
    assert len(errors) == 2 and all("DETAIL" in str(exc) for exc in errors)
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(RedactingFilter())
    handler.setFormatter(RedactingFormatter("%(message)s"))
    log = logging.getLogger("tests.disclosure")
    log.addHandler(handler)
    try:
        for exc in errors:
            log.error("unhandled error on /sms/africastalking/inbound", exc_info=exc)
            log.error("job raised\n%s", str(exc))  # a traceback already formatted (the worker's own line)
            handler.setFormatter(JsonFormatter())
    finally:
        log.removeHandler(handler)
    logged = stream.getvalue()
    assert "DETAIL" in logged and "already exists" in logged  # what failed is still said
    for datum in ("QW7E9R", "ZX8C4V", "Achieng", "Njeri"):
        assert datum not in logged, logged
