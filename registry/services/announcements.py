"""School announcements to guardians: bulk SMS to every guardian of a school (or grade), respecting STOP."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import ColumnElement, func, select, update
from sqlalchemy.orm import Session

from .. import gsm
from ..db import Database
from ..models import (
    Announcement,
    Guardian,
    GuardianLink,
    Institution,
    Learner,
    MessageKind,
    MessageStatus,
    OutboundMessage,
    PhoneSetting,
    utcnow,
)
from ..outbox import CANCELLED, LEASE, queue_many

CHUNK = 500
# The same text to the same school (and grade) again within this is refused unless asked for: a
# command run twice by mistake would bill every parent's message twice.
REPEAT_WINDOW = timedelta(hours=24)


class UnknownInstitution(LookupError):
    """No institution has the code given."""


class UnknownAnnouncement(LookupError):
    """No announcement has the id given."""


class RepeatedAnnouncement(Exception):
    """The same text went to the same school (and grade) within ``REPEAT_WINDOW``: ``earlier``."""

    def __init__(self, earlier: Announcement) -> None:
        super().__init__(f"announcement {earlier.id} sent this text to the same phones")
        self.earlier = earlier


def prefer_gsm7(body: str) -> str:
    """``body`` with look-alikes (curly quotes, dashes) mapped to GSM-7 when that makes it all GSM-7;
    a text that needs UCS-2 anyway (another script, emoji) is kept as written."""
    mapped = gsm.to_gsm7(body, replacement="\x00")
    return body if "\x00" in mapped else mapped


def find_institution(session: Session, code: str) -> Institution:
    institution = session.scalars(select(Institution).where(Institution.code == code.strip().upper())).first()
    if institution is None:
        raise UnknownInstitution(f"no institution has the code {code.strip()!r}")
    return institution


def announcement_recipients(session: Session, institution_id: int, grade: str | None = None) -> list[str]:
    """The distinct phones of every guardian of the institution's learners (of ``grade`` if given),
    without the phones that sent STOP. One phone linked to several learners appears once."""
    opted_out = select(PhoneSetting.phone).where(PhoneSetting.opted_out.is_(True))
    query = (
        select(Guardian.phone)
        .join(GuardianLink, GuardianLink.guardian_id == Guardian.id)
        .join(Learner, Learner.id == GuardianLink.learner_id)
        .where(Learner.institution_id == institution_id, Guardian.phone.not_in(opted_out))
        .distinct()
        .order_by(Guardian.phone)
    )
    if grade:
        query = query.where(func.lower(Learner.grade) == grade.strip().lower())
    return list(session.scalars(query))


def opted_out_count(session: Session, institution_id: int, grade: str | None = None) -> int:
    """How many guardian phones of the institution (grade) are left out because they sent STOP."""
    query = (
        select(func.count(func.distinct(Guardian.phone)))
        .join(GuardianLink, GuardianLink.guardian_id == Guardian.id)
        .join(Learner, Learner.id == GuardianLink.learner_id)
        .join(PhoneSetting, PhoneSetting.phone == Guardian.phone)
        .where(Learner.institution_id == institution_id, PhoneSetting.opted_out.is_(True))
    )
    if grade:
        query = query.where(func.lower(Learner.grade) == grade.strip().lower())
    return session.scalar(query) or 0


def earlier_same(session: Session, institution: Institution, body: str, grade: str | None) -> Announcement | None:
    """The latest announcement of this very text to this school (and grade) within ``REPEAT_WINDOW``."""
    query = (
        select(Announcement)
        .where(Announcement.institution_code == institution.code, Announcement.body == prefer_gsm7(body.strip()),
               Announcement.created_at >= utcnow() - REPEAT_WINDOW,
               Announcement.grade.is_(None) if grade is None else Announcement.grade == grade)
        .order_by(Announcement.id.desc())
        .limit(1)
    )
    return session.scalars(query).first()


def announce(
    session: Session,
    institution: Institution,
    body: str,
    grade: str | None = None,
    progress: Callable[[int, int], None] | None = None,
    *,
    again: bool = False,
) -> Announcement:
    """Queue one announcement message per recipient phone (bulk priority), in the caller's
    transaction; ``progress(done, total)`` hears of each chunk written. The same text to the same
    school and grade within ``REPEAT_WINDOW`` raises :class:`RepeatedAnnouncement` unless ``again``
    (two runs at once are told apart by the school's row lock, on PostgreSQL)."""
    session.execute(select(Institution.id).where(Institution.id == institution.id).with_for_update())
    if not again and (earlier := earlier_same(session, institution, body, grade)) is not None:
        raise RepeatedAnnouncement(earlier)
    body = prefer_gsm7(body.strip())
    recipients = announcement_recipients(session, institution.id, grade)
    announcement = Announcement(institution_code=institution.code, grade=grade, body=body,
                                recipients=len(recipients))
    session.add(announcement)
    session.flush()
    for start in range(0, len(recipients), CHUNK):
        chunk = recipients[start:start + CHUNK]
        queue_many(session, ((phone, MessageKind.ANNOUNCEMENT, body, None) for phone in chunk),
                   announcement_id=announcement.id)
        if progress is not None:
            progress(start + len(chunk), len(recipients))
    return announcement


CANCEL_CHUNK = 5000
CANCEL_PASSES = 10  # rows a worker holds (claiming them) are looked at again this many times
CANCEL_PAUSE_S = 0.2


@dataclass(frozen=True)
class Cancellation:
    """What cancelling an announcement did: ``cancelled`` messages will not be sent; ``in_flight``
    were already taken by a worker (with AT, or being handed over) and may still arrive;
    ``still_waiting`` were held by another transaction through every pass and are still queued."""

    announcement: Announcement
    cancelled: int
    in_flight: int
    done: int  # with AT or delivered, or failed of itself
    cancelled_before: int  # by an earlier cancel of the same announcement
    still_waiting: int = 0


def announcement_counts(session: Session, announcement_id: int) -> dict[str, int]:
    """The announcement's messages by status, with those cancelled under ``"cancelled"`` rather
    than ``"failed"``."""
    cancelled = (OutboundMessage.failure_reason == CANCELLED).label("cancelled")
    rows = session.execute(
        select(OutboundMessage.status, cancelled, func.count())
        .where(OutboundMessage.announcement_id == announcement_id)
        .group_by(OutboundMessage.status, cancelled)
    )
    counts: dict[str, int] = {}
    for status, was_cancelled, count in rows:
        key = "cancelled" if was_cancelled else str(status)
        counts[key] = counts.get(key, 0) + count
    return counts


def _cancellable(announcement_id: int) -> ColumnElement[bool]:
    """The announcement's messages a cancel ends: queued, or submitted past the lease unanswered."""
    lost = ((OutboundMessage.status == MessageStatus.SUBMITTED) & OutboundMessage.accepted_at.is_(None)
            & (OutboundMessage.submitted_at < utcnow() - LEASE))
    return (OutboundMessage.announcement_id == announcement_id) & ((OutboundMessage.status == MessageStatus.QUEUED)
                                                                   | lost)


def cancellable_count(session: Session, announcement_id: int) -> int:
    """How many of the announcement's messages a cancel would end now (``cancel_announcement``)."""
    return session.scalar(select(func.count()).where(_cancellable(announcement_id))) or 0


def find_announcement(session: Session, announcement_id: int) -> Announcement:
    announcement = session.get(Announcement, announcement_id)
    if announcement is None:
        raise UnknownAnnouncement(f"no announcement has the id {announcement_id}")
    return announcement


def cancel_announcement(db: Database, announcement_id: int, *, sleep: Callable[[float], None] = time.sleep) -> Cancellation:
    """Stop an announcement sent by mistake: every message of it still waiting (``queued``, also
    those waiting out a retry) ends ``failed`` with ``CANCELLED``, so its job in Redis finds nothing
    to claim. So does one ``submitted`` past the lease (``LEASE``) without AT's answer: its worker
    was lost (or the database restored from before the send) and the reconciler would send it again.
    A message a worker has claimed within the lease is in flight and is left alone.

    The cancel is recorded on the announcement first (``cancelled_at``): a worker's claim then ends
    any message of it instead of sending it, so one in flight that goes back to waiting later (its
    worker lost, a retry) is not sent either, nor one a transaction held through every pass.

    Chunks of ``CANCEL_CHUNK`` rows, each its own short transaction, skip the rows a worker is
    claiming that moment (``SKIP LOCKED`` on PostgreSQL) rather than wait for them: a cancel never
    holds up the workers nor deadlocks with a claim, and the rows skipped are looked at again once
    that claim has ended (they are then in flight, or still waiting and cancelled). Rows held through
    every pass are counted in ``still_waiting``."""
    with db.transaction() as session:  # first: from this commit on, a worker ends what it takes of it
        announcement = find_announcement(session, announcement_id)
        if announcement.cancelled_at is None:
            announcement.cancelled_at = utcnow()
    waiting = _cancellable(announcement_id)
    cancelled = 0
    for _ in range(CANCEL_PASSES):
        while True:
            with db.transaction() as session:
                ids = (select(OutboundMessage.id).where(waiting).order_by(OutboundMessage.id)
                       .limit(CANCEL_CHUNK).with_for_update(skip_locked=True))
                ended = session.execute(
                    update(OutboundMessage)
                    .where(OutboundMessage.id.in_(ids.scalar_subquery()), waiting)
                    .values(status=MessageStatus.FAILED, failure_reason=CANCELLED, next_attempt_at=None,
                            updated_at=utcnow())
                    .execution_options(synchronize_session=False)
                ).rowcount or 0
            cancelled += ended
            if ended < CANCEL_CHUNK:
                break
        with db.session() as session:
            still = session.scalar(select(func.count()).where(waiting))
        if not still:
            break
        sleep(CANCEL_PAUSE_S)  # held by a claim: it commits within its batch
    with db.session() as session:
        counts = announcement_counts(session, announcement_id)
    in_flight = counts.get(MessageStatus.SUBMITTED.value, 0)
    still_waiting = counts.get(MessageStatus.QUEUED.value, 0)
    all_cancelled = counts.get("cancelled", 0)
    done = sum(counts.values()) - in_flight - still_waiting - all_cancelled
    return Cancellation(announcement, cancelled, in_flight, done, all_cancelled - cancelled, still_waiting)
