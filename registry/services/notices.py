"""Notices about one learner to each phone linked to it (transfer released, admitted), in the phone's language.

Notices concern the guardian's own learner, so they also go to phones that sent STOP (STOP ends
announcements). They are queued in the caller's transaction and leave through the SMS outbox.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from .. import gsm
from ..models import Guardian, GuardianLink, Learner, MessageKind, PhoneSetting
from ..outbox import queue_many

TEXTS: dict[str, dict[str, str]] = {
    "released_to": {
        "en": "Elimu: {name} has been released by {school} to {other}.",
        "sw": "Elimu: {name} ameachiliwa na {school} kwenda {other}.",
    },
    "released": {
        "en": "Elimu: {name} has been released by {school} and can now be admitted by another school.",
        "sw": "Elimu: {name} ameachiliwa na {school} na sasa anaweza kupokelewa na shule nyingine.",
    },
    "admitted": {
        "en": "Elimu: {name} has been admitted to {school} (from {other}).",
        "sw": "Elimu: {name} amepokelewa {school} (kutoka {other}).",
    },
}


def notice_text(event: str, language: str, *, name: str, school: str, other: str | None = None) -> str:
    """The notice for ``event`` (``released`` or ``admitted``) in ``language``, GSM-7."""
    key = "released_to" if event == "released" and other else event
    variants = TEXTS[key]
    body = variants.get(language, variants["en"]).format(name=name, school=school, other=other or "")
    return gsm.to_gsm7(body)


def notify_guardians(session: Session, learner: Learner, event: str, *, school: str, other: str | None = None) -> int:
    """Queue the ``event`` notice to every phone linked to ``learner``; returns how many were queued."""
    if event not in ("released", "admitted"):
        raise ValueError(f"unknown notice event {event!r}")
    rows = session.execute(
        select(Guardian.phone, PhoneSetting.language)
        .join(GuardianLink, GuardianLink.guardian_id == Guardian.id)
        .outerjoin(PhoneSetting, PhoneSetting.phone == Guardian.phone)
        .where(GuardianLink.learner_id == learner.id)
        .distinct()
        .order_by(Guardian.phone)
    ).all()
    messages = [
        (phone, MessageKind.NOTICE,
         notice_text(event, language or "en", name=learner.masked_name, school=school, other=other), None)
        for phone, language in rows
    ]
    queue_many(session, messages)
    return len(messages)
