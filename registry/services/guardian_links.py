"""Taking a phone off a learner: the way to undo a guardian link an import made.

An import only adds or updates links (a school's file lists the guardians it has, not the ones it
no longer has), so a mistyped or reassigned number stays linked, and a phone that was verified
keeps seeing the learner, until an operator unlinks it here. Unlinking is audited, and the messages
about the learner still queued for the phone (a transfer notice, a UPI, results, an announcement
to its school or class) are not sent: they were written for a link that is gone.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, func, or_, select
from sqlalchemy.orm import Session

from ..identifiers import InvalidMsisdn, InvalidUpi, normalize_msisdn, normalize_upi
from ..models import (
    Announcement,
    AuditEvent,
    ExamResult,
    Guardian,
    GuardianLink,
    Institution,
    Learner,
    MessageKind,
    OutboundMessage,
)
from .audit import record_disclosure
from .notices import NOTICE_ACTION
from .withdrawals import withdraw_messages

UNLINKED_ACTION = "guardian_unlinked"
WITHDRAWN = "not sent: the phone was unlinked from the learner"


class UnlinkRefused(Exception):
    """The link cannot be removed; ``reason`` says why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class Unlinked:
    """What ``unlink_guardian`` removed."""

    upi: str
    masked_name: str
    phone: str
    relationship: str
    verified_at: datetime | None  # when the phone had proved it knows the learner (None: never)
    phones_left: int  # other phones still linked to the learner
    withdrawn: int = 0  # messages naming the learner that were still queued for the phone, now not sent


def unlink_guardian(session: Session, upi: str, phone: str, *, by: str, institution_code: str | None = None) -> Unlinked:
    """Remove the link between learner ``upi`` and ``phone`` (any usual form), in the caller's
    transaction, with an audit row naming ``by``. With ``institution_code`` the learner must be
    enrolled there (a school unlinks only its own learners). The phone's account stays: its other
    learners are untouched, and without the link it sees nothing of this one."""
    try:
        code = normalize_upi(upi)
        number = normalize_msisdn(phone)
    except (InvalidUpi, InvalidMsisdn) as exc:
        raise UnlinkRefused(str(exc)) from None
    learner = session.scalars(select(Learner).where(Learner.upi == code)).first()
    if learner is None:
        raise UnlinkRefused(f"no learner has UPI {code}")
    if institution_code is not None and learner.institution.code != institution_code.strip().upper():
        raise UnlinkRefused(f"{code} is not enrolled at {institution_code.strip().upper()}")
    lock_guardian(session, number)
    link = session.scalars(
        select(GuardianLink).join(Guardian, Guardian.id == GuardianLink.guardian_id)
        .where(GuardianLink.learner_id == learner.id, Guardian.phone == number)
    ).first()
    if link is None:
        raise UnlinkRefused(f"{number} is not linked to {code}")
    relationship, verified_at = link.relationship_, link.verified_at
    session.execute(delete(GuardianLink).where(GuardianLink.id == link.id))
    left = session.scalar(select(func.count()).select_from(GuardianLink).where(GuardianLink.learner_id == learner.id))
    withdrawn = withdraw_queued(session, number, learner)
    detail = f"unlinked by {by} (was {'verified' if verified_at else 'not verified'})"
    if withdrawn:
        detail += f"; {withdrawn} queued message(s) withdrawn"
    record_disclosure(session, phone=number, learner_id=learner.id, action=UNLINKED_ACTION, channel="cli",
                      detail=detail[:200])
    return Unlinked(upi=code, masked_name=learner.masked_name, phone=number, relationship=relationship,
                    verified_at=verified_at, phones_left=left or 0, withdrawn=withdrawn)


def lock_guardian(session: Session, phone: str) -> None:
    """Lock the guardian row of ``phone`` (PostgreSQL: ``FOR NO KEY UPDATE``) before one of its
    links is deleted. The trigger that marks a guardian left with no link (``models.unlinking``)
    locks that row after the delete; an activation locks it first and then writes the link, so a
    delete that took the link's row before the guardian's deadlocked with it. A path deleting the
    links of several guardians must lock them all first, in id order."""
    session.execute(select(Guardian.id).where(Guardian.phone == phone).with_for_update(key_share=True))


def withdraw_queued(session: Session, phone: str, learner: Learner) -> int:
    """End the messages naming ``learner`` still queued for ``phone`` (``failed``, ``WITHDRAWN``), in
    the caller's transaction: its transfer notices (by the message id their audit row names), its
    UPI messages (their text holds the UPI), its results replies (their text holds an index number
    of the learner's) and the announcements to its school or class that no other learner of the
    phone's is in. A row a worker has claimed is in flight and left alone; each one withdrawn that
    named the learner is recorded as ``disclosure_withdrawn`` (``withdrawals``)."""
    references = session.scalars(select(AuditEvent.reference).where(
        AuditEvent.phone == phone, AuditEvent.learner_id == learner.id, AuditEvent.action == NOTICE_ACTION,
        AuditEvent.reference.is_not(None)))
    notices = [int(ref) for ref in references if ref.isdigit()]
    naming = (OutboundMessage.kind == MessageKind.UPI) & OutboundMessage.body.contains(learner.upi, autoescape=True)
    if notices:
        naming = naming | ((OutboundMessage.kind == MessageKind.NOTICE) & OutboundMessage.id.in_(notices))
    # a results reply still waiting out a retry (AT was down) carries the learner's index number
    numbers = set(session.scalars(select(ExamResult.index_number).where(ExamResult.learner_id == learner.id)))
    if numbers:
        naming = naming | ((OutboundMessage.kind == MessageKind.REPLY)
                           & or_(*(OutboundMessage.body.contains(n, autoescape=True) for n in sorted(numbers))))
    # an announcement to the learner's school (or class) tells the phone a learner linked to it is
    # there: withdrawn unless another learner linked to the phone still is
    still_there = (
        select(GuardianLink.id)
        .join(Guardian, Guardian.id == GuardianLink.guardian_id)
        .join(Learner, Learner.id == GuardianLink.learner_id)
        .join(Institution, Institution.id == Learner.institution_id)
        .where(Guardian.phone == phone, Institution.code == Announcement.institution_code,
               or_(Announcement.grade.is_(None), func.lower(Learner.grade) == func.lower(func.trim(Announcement.grade))))
        .exists()
    )
    naming = naming | ((OutboundMessage.kind == MessageKind.ANNOUNCEMENT) & select(Announcement.id).where(
        Announcement.id == OutboundMessage.announcement_id, ~still_there).exists())
    return len(withdraw_messages(session, phone, naming, WITHDRAWN, learner_id=learner.id))
