"""Taking a phone off a learner: the way to undo a guardian link an import made.

An import only adds or updates links (a school's file lists the guardians it has, not the ones it
no longer has), so a mistyped or reassigned number stays linked, and a phone that was verified
keeps seeing the learner, until an operator unlinks it here. Unlinking is audited.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from ..identifiers import InvalidMsisdn, InvalidUpi, normalize_msisdn, normalize_upi
from ..models import Guardian, GuardianLink, Learner
from .audit import record_disclosure

UNLINKED_ACTION = "guardian_unlinked"


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
    link = session.scalars(
        select(GuardianLink).join(Guardian, Guardian.id == GuardianLink.guardian_id)
        .where(GuardianLink.learner_id == learner.id, Guardian.phone == number)
    ).first()
    if link is None:
        raise UnlinkRefused(f"{number} is not linked to {code}")
    relationship, verified_at = link.relationship_, link.verified_at
    session.execute(delete(GuardianLink).where(GuardianLink.id == link.id))
    left = session.scalar(select(func.count()).select_from(GuardianLink).where(GuardianLink.learner_id == learner.id))
    record_disclosure(session, phone=number, learner_id=learner.id, action=UNLINKED_ACTION, channel="cli",
                      detail=f"unlinked by {by} (was {'verified' if verified_at else 'not verified'})")
    return Unlinked(upi=code, masked_name=learner.masked_name, phone=number, relationship=relationship,
                    verified_at=verified_at, phones_left=left or 0)
