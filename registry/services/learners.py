"""Finding learners and the phones linked to them."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session, joinedload

from ..models import ExamResult, Guardian, GuardianLink, Learner


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
    """Learners linked to an E.164 phone (as guardian or ``self``), ordered by first name."""
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


def is_linked(session: Session, phone: str, learner_id: int) -> bool:
    """Whether an E.164 phone is linked to a learner."""
    query = (
        select(GuardianLink.id)
        .join(Guardian, Guardian.id == GuardianLink.guardian_id)
        .where(Guardian.phone == phone, GuardianLink.learner_id == learner_id)
    )
    return session.scalars(query.limit(1)).first() is not None
