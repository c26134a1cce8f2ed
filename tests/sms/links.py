"""Verified links for the SMS tests: ``tests.sms.support.add_guardian`` records links as a school's
import does (not verified); these mark one proven, as the USSD activation does."""

from __future__ import annotations

from datetime import UTC, datetime

from registry.models import Guardian, GuardianLink, Learner


def verify(session, phone: str, *learners: Learner) -> None:
    """Mark ``phone``'s links to ``learners`` verified (``GuardianLink.verified_at``)."""
    guardian = session.query(Guardian).filter_by(phone=phone).one()
    for learner in learners:
        link = session.query(GuardianLink).filter_by(guardian_id=guardian.id, learner_id=learner.id).one()
        link.verified_at = datetime.now(UTC)
    session.flush()
