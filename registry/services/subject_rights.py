"""A data subject's rights over a phone number (DPA 2019): access (s.26) and erasure (s.40).

``subject_data`` gathers everything the registry holds about one E.164 phone; ``erase`` removes
what the service itself created and no law needs kept. The school's records (the guardian's name
and phone, the links to its learners: they come from the school's import) and the audit trail (the
record of who saw what) are kept; message rows stay as billing records, their text replaced as
``elimu purge`` does, and every message still queued for the phone (not yet handed to AT) is not
sent: a notice, UPI or results written for a verified phone, which it no longer is, an announcement
or a code to a phone that asked to be forgotten (``withdrawals``, as unlinking does). Redis state
is not here (the registry has no Redis): see ``elimu privacy``.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import UTC, datetime

from sqlalchemy import delete, select, true, update
from sqlalchemy.orm import Session

from menus.texts import DEFAULT_LANGUAGE

from ..models import (
    AuditEvent,
    Guardian,
    GuardianLink,
    InboundMessage,
    Institution,
    Learner,
    MessageKind,
    MessageStatus,
    OneTimeCode,
    OutboundMessage,
    PhoneSetting,
    UssdSessionEvent,
)
from ..models.accounts import PinSession
from .audit import history, record_disclosure
from .retention import PURGED
from .withdrawals import withdraw_messages

ERASED_ACTION = "data_erased"
IN_FLIGHT = (MessageStatus.QUEUED, MessageStatus.SUBMITTED)  # still to be sent: their text is needed
WITHDRAWN = "not sent: the phone's data was erased"


WITHHELD = "link not verified: learner details withheld"
AUDIT_WITHHELD = "withheld: not verified for this phone"  # an audit row's learner the phone has not verified


@dataclass(frozen=True)
class LinkedLearner:
    upi: str
    masked_name: str
    school: str  # code and name
    relationship: str
    verified_at: datetime | None  # the phone proved it knows the learner (activated for it)
    linked_at: datetime | None = None  # when the school's import linked the phone


@dataclass(frozen=True)
class SubjectData:
    """Everything held about one phone, as rows of the registry (``export_record`` makes it plain data)."""

    phone: str
    guardian: Guardian | None
    pin_entered_at: datetime | None  # the account's last right PIN (``PinSession``), if any
    learners: list[LinkedLearner]
    setting: PhoneSetting | None
    codes: list[OneTimeCode]
    sent: list[OutboundMessage]
    received: list[InboundMessage]
    sessions: list[UssdSessionEvent]
    audit: list[tuple[AuditEvent, str | None]]  # with the learner's UPI

    @property
    def held(self) -> bool:
        """Whether the service holds anything at all about the phone."""
        return any([self.guardian, self.learners, self.setting, self.codes, self.sent, self.received,
                    self.sessions, self.audit])


def subject_data(session: Session, phone: str) -> SubjectData:
    """What the registry holds about ``phone`` (E.164), oldest first (the audit trail newest first)."""
    return SubjectData(
        phone=phone,
        guardian=session.scalar(select(Guardian).where(Guardian.phone == phone)),
        pin_entered_at=session.scalar(select(PinSession.verified_at).where(PinSession.guardian_id.in_(_guardian_ids(phone)))),
        learners=linked_learners(session, phone),
        setting=session.get(PhoneSetting, phone),
        codes=_rows(session, OneTimeCode, OneTimeCode.phone == phone),
        sent=_rows(session, OutboundMessage, OutboundMessage.recipient == phone),
        received=_rows(session, InboundMessage, InboundMessage.sender == phone),
        sessions=_rows(session, UssdSessionEvent, UssdSessionEvent.phone == phone),
        audit=history(session, phone=phone, limit=None),
    )


def _rows(session: Session, model: type, condition) -> list:
    return list(session.scalars(select(model).where(condition).order_by(model.created_at, model.id)))


def linked_learners(session: Session, phone: str) -> list[LinkedLearner]:
    """The learners the school linked to ``phone``, with whether the phone proved it knows each."""
    rows = session.execute(
        select(Learner, Institution, GuardianLink)
        .join(GuardianLink, GuardianLink.learner_id == Learner.id)
        .join(Guardian, Guardian.id == GuardianLink.guardian_id)
        .join(Institution, Institution.id == Learner.institution_id)
        .where(Guardian.phone == phone)
        .order_by(Learner.upi)
    )
    return [LinkedLearner(learner.upi, learner.masked_name, f"{school.code} {school.name}", link.relationship_,
                          link.verified_at, link.created_at) for learner, school, link in rows]


def message_body(message: OutboundMessage) -> str | None:
    """An outbound message's text as an export shows it: never an OTP's, nothing once purged."""
    return None if message.kind == MessageKind.OTP or message.body == PURGED else message.body


def inbound_text(message: InboundMessage) -> str | None:
    return None if message.text == PURGED else message.text


def export_record(data: SubjectData) -> dict:
    """``data`` as plain JSON data: what ``elimu privacy export`` shows. Never a PIN or code hash,
    an OTP's text or a purged body, and no learner datum (UPI, name, school) of a link the phone has
    not verified: the report may reach whoever holds the phone, which the registry does not know to
    be that learner's guardian (the link's existence and dates are the phone's own data)."""
    guardian = data.guardian
    verified = {ln.upi for ln in data.learners if ln.verified_at is not None}
    return {
        "phone": data.phone,
        "held": data.held,
        "guardian": None if guardian is None else {
            "name": guardian.name, "active": guardian.is_active, "pin_set": guardian.pin_hash is not None,
            "activated_at": _iso(guardian.activated_at), "pin_locked_until": _iso(guardian.pin_locked_until),
            "pin_entered_at": _iso(data.pin_entered_at),
        },
        "learners": [_linked(ln) for ln in data.learners],
        "settings": None if data.setting is None else {
            "language": data.setting.language, "opted_out": data.setting.opted_out},
        "one_time_codes": [{"purpose": c.purpose, "created_at": _iso(c.created_at), "expires_at": _iso(c.expires_at),
                            "used_at": _iso(c.used_at)} for c in data.codes],
        "messages_sent": [{"id": m.id, "kind": str(m.kind), "status": str(m.status), "created_at": _iso(m.created_at),
                           "sent_at": _iso(m.sent_at), "delivered_at": _iso(m.delivered_at),
                           "body": message_body(m)} for m in data.sent],
        "messages_received": [{"id": m.id, "command": m.command, "received_at": _iso(m.received_at or m.created_at),
                               "handled_at": _iso(m.handled_at), "text": inbound_text(m)} for m in data.received],
        "ussd_sessions": [{"session_id": e.session_id, "at": _iso(e.created_at), "status": e.status,
                           "hops": e.hops_count, "duration_ms": e.duration_ms, "input_shape": e.last_input}
                          for e in data.sessions],
        "audit": [{"at": _iso(e.at), "learner": upi if upi is None or upi in verified else AUDIT_WITHHELD,
                   "action": e.action, "channel": e.channel, "reference": e.reference, "detail": e.detail}
                  for e, upi in data.audit],
    }


def _linked(ln: LinkedLearner) -> dict:
    """One link as the export shows it: the learner's details only when the phone verified it."""
    shown = ln.verified_at is not None
    return {"upi": ln.upi if shown else None, "name": ln.masked_name if shown else None,
            "school": ln.school if shown else None, "withheld": None if shown else WITHHELD,
            "relationship": ln.relationship, "linked_at": _iso(ln.linked_at), "verified": shown,
            "verified_at": _iso(ln.verified_at)}


def _iso(value: datetime | None) -> str | None:
    """ISO 8601 in UTC with its zone (SQLite gives times back without one; every stored time is UTC)."""
    return None if value is None else (value if value.tzinfo else value.replace(tzinfo=UTC)).astimezone(UTC).isoformat()


# --- erasure ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Erasure:
    """What one erasure removed (or, from ``erasure_preview``, would remove)."""

    account: int  # the guardian's activation, PIN and lockouts (0 or 1)
    verified_links: int
    settings: int  # the phone's language (and the row, unless it keeps an opt-out)
    one_time_codes: int
    outbound_bodies: int
    inbound_texts: int
    session_events: int
    waiting_messages: int  # kept: still to be sent or answered, their text is needed until then
    kept_opt_out: bool  # the phone had sent STOP: announcements stay stopped
    withdrawn: int = 0  # messages still queued for it, now not sent (their texts counted in outbound_bodies)

    @property
    def total(self) -> int:
        """Items erased (the kept ones not counted)."""
        return sum(getattr(self, name) for name in ERASED_COUNTS)


ERASED_COUNTS = tuple(f.name for f in fields(Erasure) if f.name not in ("waiting_messages", "kept_opt_out",
                                                                         "withdrawn"))


def erase(session: Session, phone: str, *, audit: bool = True) -> Erasure:
    """Erase what the service created about ``phone``, in the caller's transaction (its messages
    still queued are not sent, each one naming a learner recorded as ``disclosure_withdrawn``; a
    message a worker holds is in flight and still goes), and record the erasure in the audit trail
    (``data_erased``, no learner; ``audit=False``: not recorded)."""
    kept_opt_out, settings = _erase_settings(session, phone)
    withdrawn = withdraw_messages(session, phone, true(), WITHDRAWN)  # their texts counted with the bodies
    erased = Erasure(
        account=_erase_account(session, phone),
        verified_links=_count(session.execute(
            update(GuardianLink).where(GuardianLink.guardian_id.in_(_guardian_ids(phone)),
                                       GuardianLink.verified_at.is_not(None)).values(verified_at=None))),
        settings=settings,
        one_time_codes=_count(session.execute(delete(OneTimeCode).where(OneTimeCode.phone == phone))),
        outbound_bodies=_count(session.execute(
            update(OutboundMessage).where(OutboundMessage.recipient == phone, OutboundMessage.body != PURGED,
                                          OutboundMessage.status.not_in(IN_FLIGHT)).values(body=PURGED))),
        inbound_texts=_count(session.execute(
            update(InboundMessage).where(InboundMessage.sender == phone, InboundMessage.text != PURGED,
                                         InboundMessage.handled_at.is_not(None)).values(text=PURGED))),
        session_events=_count(session.execute(delete(UssdSessionEvent).where(UssdSessionEvent.phone == phone))),
        waiting_messages=_waiting(session, phone),
        kept_opt_out=kept_opt_out,
        withdrawn=len(withdrawn),
    )
    if audit:
        record_disclosure(session, phone=phone, learner_id=None, action=ERASED_ACTION, channel="cli",
                          detail=erasure_detail(erased))
    return erased


def erasure_preview(session: Session, phone: str) -> Erasure:
    """What ``erase`` would remove now: it runs and is rolled back, so the counts are its own."""
    try:
        return erase(session, phone, audit=False)
    finally:
        session.rollback()


def erasure_detail(erased: Erasure) -> str | None:
    """The audit row's detail: the counts erased, e.g. ``account 1, verified_links 2, ...`` (None
    when only the phone's Redis state went)."""
    return ", ".join(f"{f.name} {getattr(erased, f.name)}" for f in fields(erased)
                     if f.name in ERASED_COUNTS and getattr(erased, f.name))[:200] or None


def _count(result) -> int:
    return max(result.rowcount or 0, 0)


def _guardian_ids(phone: str):
    return select(Guardian.id).where(Guardian.phone == phone).scalar_subquery()


def _erase_account(session: Session, phone: str) -> int:
    """Deactivate the phone's account: activation, PIN hash, failures, lock and the record of where
    the PIN was last entered go."""
    has_account = (Guardian.pin_hash.is_not(None) | Guardian.activated_at.is_not(None)
                   | (Guardian.pin_failures != 0) | Guardian.pin_locked_until.is_not(None))
    pin_sessions = _count(session.execute(delete(PinSession).where(PinSession.guardian_id.in_(_guardian_ids(phone)))))
    accounts = _count(session.execute(
        update(Guardian).where(Guardian.phone == phone, has_account)
        .values(pin_hash=None, activated_at=None, pin_failures=0, pin_locked_until=None)))
    return max(accounts, pin_sessions)


def _erase_settings(session: Session, phone: str) -> tuple[bool, int]:
    """Drop the phone's settings, except an opt-out: a STOP keeps working (its language is reset).
    Returns whether an opt-out was kept and whether anything was erased.

    Conditional statements, not a read and a delete: a STOP committing meanwhile (PostgreSQL
    re-checks a row another transaction changed) keeps its row."""
    mine = PhoneSetting.phone == phone
    if _count(session.execute(delete(PhoneSetting).where(mine, PhoneSetting.opted_out.is_(False)))):
        return False, 1
    reset = _count(session.execute(
        update(PhoneSetting).where(mine, PhoneSetting.opted_out.is_(True), PhoneSetting.language != DEFAULT_LANGUAGE)
        .values(language=DEFAULT_LANGUAGE)))
    kept = bool(reset) or session.scalar(select(PhoneSetting.phone).where(mine, PhoneSetting.opted_out.is_(True))) is not None
    return kept, reset


def _waiting(session: Session, phone: str) -> int:
    """Messages whose text ``erase`` keeps because it is still needed: to send, or to answer."""
    outbound = session.scalars(select(OutboundMessage.id).where(
        OutboundMessage.recipient == phone, OutboundMessage.body != PURGED, OutboundMessage.status.in_(IN_FLIGHT)))
    inbound = session.scalars(select(InboundMessage.id).where(
        InboundMessage.sender == phone, InboundMessage.text != PURGED, InboundMessage.handled_at.is_(None)))
    return len(outbound.all()) + len(inbound.all())
