"""Finding learners and the phones linked to them.

A link is only a school's record of a phone; a phone may see a learner's data only once it is
*verified* for that learner: an activated account (PIN set) whose link proved it knows the learner
(``GuardianLink.verified_at``, set by the USSD activation). The ``verified_*`` helpers and ``is_verified``
check both; ``learners_for_phone`` (the links a school recorded) must not decide a disclosure.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import ColumnElement, and_, select
from sqlalchemy.orm import Session, joinedload

from ..arrays import among
from ..models import ExamResult, Guardian, GuardianLink, Learner

# A phone verified for a learner: an activated account (as ``Guardian.is_active``) and a proven link.
VERIFIED: ColumnElement[bool] = and_(
    GuardianLink.verified_at.is_not(None), Guardian.activated_at.is_not(None), Guardian.pin_hash.is_not(None)
)


def find_learner(
    session: Session,
    *,
    upi: str | None = None,
    birth_certificate_no: str | None = None,
    assessment_no: str | None = None,
    index_number: str | None = None,
) -> Learner | None:
    """One learner by exactly one identifier; None when unknown.

    Identifiers are compared as the importer stores them: stripped and upper-cased (index
    numbers are digits).
    """
    given = [v for v in (upi, birth_certificate_no, assessment_no, index_number) if v]
    if len(given) != 1:
        raise ValueError("give exactly one identifier")
    query = select(Learner).options(joinedload(Learner.institution))
    if upi:
        query = query.where(Learner.upi == upi.strip().upper())
    elif birth_certificate_no:
        query = query.where(Learner.birth_certificate_no == " ".join(birth_certificate_no.split()).upper())
    elif assessment_no:
        query = query.where(Learner.assessment_no == " ".join(assessment_no.split()).upper())
    else:
        query = (
            query.join(ExamResult, ExamResult.learner_id == Learner.id)
            .where(ExamResult.index_number == index_number.strip())  # type: ignore[union-attr]
        )
    return session.scalars(query.limit(1)).first()


def find_guardian(session: Session, phone: str) -> Guardian | None:
    """The guardian record of an E.164 phone, or None."""
    return session.scalars(select(Guardian).where(Guardian.phone == phone)).first()


def learners_for_phone(session: Session, phone: str) -> list[Learner]:
    """Learners linked to an E.164 phone (as guardian or ``self``), verified or not, ordered by first
    name. Not a disclosure check: see :func:`verified_learners_for_phone`."""
    query = (
        select(Learner)
        .join(GuardianLink, GuardianLink.learner_id == Learner.id)
        .join(Guardian, Guardian.id == GuardianLink.guardian_id)
        .where(Guardian.phone == phone)
        .options(joinedload(Learner.institution))
        .order_by(Learner.first_name, Learner.id)
    )
    return list(session.scalars(query).unique())


def guardians_of(session: Session, learner: Learner) -> list[Guardian]:
    """Guardians (and the learner's own phone) linked to a learner."""
    query = (
        select(Guardian)
        .join(GuardianLink, GuardianLink.guardian_id == Guardian.id)
        .where(GuardianLink.learner_id == learner.id)
        .order_by(Guardian.id)
    )
    return list(session.scalars(query))


def verified_learners_for_phone(session: Session, phone: str) -> list[Learner]:
    """Learners an E.164 phone is verified for (:data:`VERIFIED`), ordered by first name."""
    query = (
        select(Learner)
        .join(GuardianLink, GuardianLink.learner_id == Learner.id)
        .join(Guardian, Guardian.id == GuardianLink.guardian_id)
        .where(Guardian.phone == phone, VERIFIED)
        .options(joinedload(Learner.institution))
        .order_by(Learner.first_name, Learner.id)
    )
    return list(session.scalars(query).unique())


def verified_phones(session: Session, learner_ids: Iterable[int], phone: str | None = None) -> set[tuple[int, str]]:
    """``(learner id, phone)`` of each phone verified for one of ``learner_ids`` (only ``phone``'s when
    given): one query for a whole batch."""
    wanted = sorted(set(learner_ids))
    if not wanted:
        return set()
    query = (
        select(GuardianLink.learner_id, Guardian.phone)
        .join(Guardian, Guardian.id == GuardianLink.guardian_id)
        .where(among(session, GuardianLink.learner_id, wanted), VERIFIED)
    )
    if phone is not None:
        query = query.where(Guardian.phone == phone)
    return {(learner_id, number) for learner_id, number in session.execute(query)}


def is_verified(session: Session, phone: str, learner_id: int) -> bool:
    """Whether an E.164 phone is verified for a learner (:data:`VERIFIED`): it may see its data."""
    return (learner_id, phone) in verified_phones(session, [learner_id], phone)
