"""Notices about one learner to each phone linked to it (transfer released, admitted, release cancelled), in
the phone's language.

The learner's (masked) name and schools are learner data: only a phone verified for the learner
(``registry.services.learners.VERIFIED``) gets them, and each such notice is an audit event. Any
other linked phone (a school's record not yet proven on USSD) gets a generic notice with no learner
data: an update about a learner linked to the number, and the USSD code to check it. A notice still
queued when its phone is unlinked from the learner is not sent (``guardian_links``).

Notices concern the guardian's own learner, so they also go to phones that sent STOP (STOP ends
announcements). They are queued in the caller's transaction and leave through the SMS outbox.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from menus.layout import short_person, shorten

from .. import gsm
from ..models import Guardian, GuardianLink, Learner, MessageKind, PhoneSetting
from ..outbox import queue_sms
from .audit import record_disclosure
from .learners import VERIFIED

DEFAULT_USSD_CODE = "*384*1234#"  # ``gateway.config``'s default for ELIMU_USSD_CODE; callers pass the configured one

EVENTS = ("released", "admitted", "cancelled")
NOTICE_ACTION = "transfer_notice"  # its reference: the notice's outbox message id
# A notice is one SMS part: with names too long for it, the learner's is cut to NAME_LIMIT and the
# schools' to the first of these that fits (common words abbreviated, then cut at a word with ".").
NAME_LIMIT = 24
SCHOOL_LIMITS = (60, 50, 44, 38, 32, 26, 20, 16, 12)

# Kiswahili with the USSD status screen's verbs (menus/texts/sw.py: "Ameruhusiwa kuhama, anasubiri
# kupokelewa na Y"): "ameruhusiwa kuhama kutoka X kwenda Y",
# allowed to move from X to Y ("ameachiliwa", set free, is said of prisoners; "na X kwenda Y", by X to Y,
# reads oddly), and "amepokelewa katika" a school.
TEXTS: dict[str, dict[str, str]] = {
    "released_to": {
        "en": "Elimu: {name} has been released by {school} to {other}.",
        "sw": "Elimu: {name} ameruhusiwa kuhama kutoka {school} kwenda {other}.",
    },
    "released": {
        "en": "Elimu: {name} has been released by {school} and can now be admitted by another school.",
        "sw": "Elimu: {name} ameruhusiwa kuhama kutoka {school} na sasa anaweza kupokelewa na shule nyingine.",
    },
    "admitted": {
        "en": "Elimu: {name} has been admitted to {school} (from {other}).",
        "sw": "Elimu: {name} amepokelewa katika {school} (kutoka {other}).",
    },
    "cancelled": {
        "en": "Elimu: the transfer of {name} has been cancelled; the learner stays at {school}.",
        "sw": "Elimu: uhamisho wa {name} umeghairiwa; mwanafunzi anabaki katika {school}.",
    },
    "unverified": {
        "en": "Elimu: there is an update about a learner linked to this number. Dial {ussd} to check.",
        "sw": "Elimu: kuna taarifa mpya kuhusu mwanafunzi aliyeunganishwa na nambari hii. Piga {ussd} kuangalia.",
    },
}


def notice_text(event: str, language: str, *, name: str, school: str, other: str | None = None) -> str:
    """The notice for ``event`` (``released``, ``admitted`` or ``cancelled``) in ``language``, GSM-7,
    in one SMS part: names are shortened only when the whole ones do not fit."""
    key = "released_to" if event == "released" and other else event
    variants = TEXTS[key]
    template = variants.get(language, variants["en"])
    body = gsm.to_gsm7(template.format(name=name, school=school, other=other or ""))
    for limit in SCHOOL_LIMITS:
        if gsm.fits(body, 1):
            break
        body = gsm.to_gsm7(template.format(name=short_person(name, NAME_LIMIT), school=shorten(school, limit),
                                           other=shorten(other or "", limit))).replace("..", ".")  # "Sch.." ends
    return body


def generic_notice_text(language: str, ussd_code: str) -> str:
    """The notice to a phone not verified for the learner: no learner data, only where to look."""
    variants = TEXTS["unverified"]
    return gsm.to_gsm7(variants.get(language, variants["en"]).format(ussd=ussd_code))


def notify_guardians(
    session: Session, learner: Learner, event: str, *, school: str, other: str | None = None,
    ussd_code: str = DEFAULT_USSD_CODE,
) -> int:
    """Queue the ``event`` notice to every phone linked to ``learner``: the full one (audited) to a
    phone verified for the learner, the generic one to any other; returns how many were queued."""
    if event not in EVENTS:
        raise ValueError(f"unknown notice event {event!r}")
    queued = 0
    for phone, language, verified in _linked_phones(session, learner):
        if verified:
            body = notice_text(event, language or "en", name=learner.masked_name, school=school, other=other)
        else:
            body = generic_notice_text(language or "en", ussd_code)
        message = queue_sms(session, phone, MessageKind.NOTICE, body)
        if verified:  # the message's id: a phone unlinked before it goes has it withdrawn (guardian_links)
            record_disclosure(session, phone=phone, learner_id=learner.id, action=NOTICE_ACTION, channel="sms",
                              reference=str(message.id), detail=event)
        queued += 1
    return queued


def _linked_phones(session: Session, learner: Learner) -> list[tuple[str, str | None, bool]]:
    """``(phone, language, verified for the learner)`` of each phone linked to ``learner``, by phone."""
    rows = session.execute(
        select(Guardian.phone, PhoneSetting.language, VERIFIED)
        .join(GuardianLink, GuardianLink.guardian_id == Guardian.id)
        .outerjoin(PhoneSetting, PhoneSetting.phone == Guardian.phone)
        .where(GuardianLink.learner_id == learner.id)
        .distinct()
        .order_by(Guardian.phone)
    ).all()
    return [(phone, language, bool(verified)) for phone, language, verified in rows]
