"""The disclosure audit trail: every learner datum that leaves the registry is recorded here."""

from __future__ import annotations

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from ..models import AuditEvent, Learner


def record_disclosure(
    session: Session,
    *,
    phone: str,
    learner_id: int | None,
    action: str,
    channel: str,
    reference: str | None = None,
    detail: str | None = None,
) -> AuditEvent:
    """Add one audit row in the caller's transaction (so it commits with the disclosure itself)."""
    event = AuditEvent(phone=phone, learner_id=learner_id, action=action, channel=channel,
                       reference=reference, detail=detail)
    session.add(event)
    return event


def history(
    session: Session, *, upi: str | None = None, phone: str | None = None, limit: int = 200
) -> list[tuple[AuditEvent, str | None]]:
    """Audit rows for a learner (by UPI) and/or a phone, newest first, with the learner's UPI."""
    query = select(AuditEvent, Learner.upi).outerjoin(Learner, Learner.id == AuditEvent.learner_id)
    conditions = []
    if upi:
        conditions.append(Learner.upi == upi.strip().upper())
    if phone:
        conditions.append(AuditEvent.phone == phone)
    if conditions:
        query = query.where(or_(*conditions) if len(conditions) > 1 else conditions[0])
    query = query.order_by(AuditEvent.at.desc(), AuditEvent.id.desc()).limit(limit)
    return [(event, learner_upi) for event, learner_upi in session.execute(query)]
