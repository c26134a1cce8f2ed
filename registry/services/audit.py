"""The disclosure audit trail: every learner datum that leaves the registry is recorded here."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime

from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session

from ..arrays import insert_rows
from ..models import AuditEvent, ExamResult, Learner, utcnow
from ..models.audit import first_two_words, third_word

BATCH_KEY = "elimu.disclosures"  # session.info: the rows ``batched_disclosures`` collects


def record_disclosure(
    session: Session,
    *,
    phone: str,
    learner_id: int | None,
    action: str,
    channel: str,
    reference: str | None = None,
    detail: str | None = None,
    at: datetime | None = None,
) -> None:
    """Add one audit row (at ``at``, default now) in the caller's transaction, so it commits with
    the disclosure itself; inside ``batched_disclosures``, with the batch's other rows."""
    row = {"at": at or utcnow(), "phone": phone, "learner_id": learner_id, "action": action, "channel": channel,
           "reference": reference, "detail": detail}
    batch = session.info.get(BATCH_KEY)
    if batch is not None:
        batch.append(row)
    else:
        session.add(AuditEvent(**row))


@contextmanager
def batched_disclosures(session: Session) -> Iterator[None]:
    """Collect the disclosures recorded inside and write them in one statement when the block
    ends without an error (still in the caller's transaction): a drain of 200 inbound texts
    writes its audit rows at once, not as 200 ORM objects."""
    rows: list[dict] = []
    session.info[BATCH_KEY] = rows
    try:
        yield
    finally:
        del session.info[BATCH_KEY]
    insert_rows(session, AuditEvent.__table__, rows)


RESULTS_ACTION = "results_replied"  # its detail: "<exam> <year> <index number>"
# A results request refused after its lookup (``sms_replies``), its detail as a reply's ("-" for the
# year of a number nobody holds): names that matched no candidate, or no name checked.
RESULTS_MISS_ACTION = "results_miss"
RESULTS_REFUSED_ACTION = "results_refused"


def record_failed_check(
    session: Session, *, phone: str, action: str, channel: str, at: datetime | None = None,
    reference: str | None = None, detail: str | None = None,
) -> None:
    """A phone's failed proof of knowing a learner (e.g. ``activation_miss``, ``results_miss``): no
    learner, nothing disclosed, but in the trail beside the disclosures (``elimu audit --phone``),
    where the registry counts them to stop guessing (``accounts.MISSES_PER_DAY``,
    ``sms_replies.MISSES_PER_DAY``); inside ``batched_disclosures``, with the batch's rows."""
    record_disclosure(session, phone=phone, learner_id=None, action=action, channel=channel, reference=reference,
                      detail=detail, at=at)


def history(
    session: Session, *, upi: str | None = None, phone: str | None = None, index_number: str | None = None,
    series: tuple[str, int] | None = None, limit: int | None = 200,
) -> list[tuple[AuditEvent, str | None]]:
    """Audit rows for a learner (by UPI), a phone, a candidate's index number and/or the results
    sent of an exam series (``("KCSE", 2025)``), newest first, with the learner's UPI (at most
    ``limit``; None: all). A learner's rows include the results sent of each index number now
    linked to it, also those sent before the link was made (a result imported without a UPI); an
    index number's, the results sent of it and the results requests refused at it (``results_miss``,
    ``results_refused``: attempts, not the learner's data, so not among a learner's rows).

    Each condition is one an index serves (the learner's id, the phone, the index number, the
    series), so the rows matching any of them are found without reading the whole trail; the
    series' index holds its rows in time order, so its newest ``limit`` are read alone."""
    query = select(AuditEvent, Learner.upi).outerjoin(Learner, Learner.id == AuditEvent.learner_id)
    conditions = []
    numbers: list[str] = []
    if upi:
        learner_ids = session.scalars(select(Learner.id).where(Learner.upi == upi.strip().upper())).all()
        conditions.append(AuditEvent.learner_id.in_(learner_ids))  # none: matches no row
        if learner_ids:
            numbers.extend(session.scalars(select(ExamResult.index_number)
                                           .where(ExamResult.learner_id.in_(learner_ids)).distinct()))
    if phone:
        conditions.append(AuditEvent.phone == phone)
    if numbers:
        conditions.append(results_of(*numbers))
    if index_number:
        conditions.append(requests_at(index_number.strip().upper()))
    if series:
        conditions.append(results_of_series(*series))
    if conditions:
        query = query.where(or_(*conditions) if len(conditions) > 1 else conditions[0])
    query = query.order_by(AuditEvent.at.desc(), AuditEvent.id.desc()).limit(limit)
    return [(event, learner_upi) for event, learner_upi in session.execute(query)]


def results_of_series(exam: str, year: int):
    """The results replies of one exam series (the first two words of their detail, ``"<exam>
    <year>"``), by the expression ``ix_audit_events_series`` holds before each row's time: the
    newest of a series, or those since a release, are read from it without the rest of the trail."""
    return and_(AuditEvent.action == RESULTS_ACTION, first_two_words(AuditEvent.detail) == f"{exam} {year}")


def results_of(*index_numbers: str):
    """The results replies of these index or assessment numbers (the last word of their detail,
    ``"<exam> <year> <number>"``), by the expression ``ix_audit_events_index_number`` holds."""
    return and_(AuditEvent.action == RESULTS_ACTION, third_word(AuditEvent.detail).in_(sorted(set(index_numbers))))


def requests_at(*index_numbers: str):
    """The results replies of these numbers and the results requests refused at them (their detail
    as a reply's), by the same expression ``ix_audit_events_index_number`` holds."""
    actions = (RESULTS_ACTION, RESULTS_MISS_ACTION, RESULTS_REFUSED_ACTION)
    return and_(AuditEvent.action.in_(actions), third_word(AuditEvent.detail).in_(sorted(set(index_numbers))))
