"""School announcements to guardians: bulk SMS to every guardian of a school (or grade), respecting STOP."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from .. import gsm
from ..models import (
    Announcement,
    Guardian,
    GuardianLink,
    Institution,
    Learner,
    MessageKind,
    PhoneSetting,
    utcnow,
)
from ..outbox import queue_many

CHUNK = 500
# The same text to the same school (and grade) again within this is refused unless asked for: a
# command run twice by mistake would bill every parent's message twice.
REPEAT_WINDOW = timedelta(hours=24)


class UnknownInstitution(LookupError):
    """No institution has the code given."""


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

