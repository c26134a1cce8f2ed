"""Storage limitation (DPA 2019 s.25): purge what the service no longer needs.

Two ages: message texts and USSD session events go after ``ELIMU_RETENTION_DAYS`` (90 by default);
the records kept past that (the audit trail, and the message rows both ways as billing records) go
after ``ELIMU_RECORDS_RETENTION_DAYS`` (five years by default, the Tax Procedures Act's period for
billing records). ``elimu purge`` (a daily timer) applies both.

The records' age also ends two kinds of registry data that nothing else ends: a guardian row (a
parent's name and phone) left with no learner (counted from when its last link came off), and a
phone's settings (language) after no contact.
An opt-out (STOP) is kept for good, its language reset: it is the subject's own wish, and the phone
may be imported again by a school, when deleting it would make announcements resume.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, delete, exists, func, update
from sqlalchemy.orm import Session

from menus.texts import DEFAULT_LANGUAGE

from ..models import (
    Announcement,
    AuditEvent,
    Guardian,
    GuardianLink,
    InboundMessage,
    OneTimeCode,
    OutboundMessage,
    PhoneSetting,
    UssdSessionEvent,
    utcnow,
)
from ..models.accounts import PinSession

PURGED = "[purged]"
RECORDS_DAYS = 1827  # five years (with a leap day): the default of ELIMU_RECORDS_RETENTION_DAYS


@dataclass(frozen=True)
class PurgeCounts:
    session_events: int
    outbound_bodies: int
    inbound_texts: int
    one_time_codes: int
    audit_rows: int = 0
    outbound_rows: int = 0
    inbound_rows: int = 0
    announcement_texts: int = 0
    guardian_rows: int = 0
    phone_settings: int = 0


def purge(session: Session, older_than: timedelta, records_older_than: timedelta | None = None) -> PurgeCounts:
    """Delete USSD session events and expired codes, and blank message bodies (an announcement's own
    copy of its text too: a school may name a learner in it), older than ``older_than``;
    with ``records_older_than``, also delete the audit rows and message rows older than that, the
    guardian rows with no learner and no contact for that long (``forget_unlinked_guardians``) and
    the settings of phones with no contact for that long (``forget_idle_settings``).

    Until then message rows stay (ids, statuses and costs are billing records), only their text goes,
    and the audit trail is kept: it is the record of who saw what, for access requests and breach
    notices.
    """
    cutoff = utcnow() - older_than
    events = session.execute(delete(UssdSessionEvent).where(UssdSessionEvent.created_at < cutoff)).rowcount
    outbound = session.execute(
        update(OutboundMessage)
        .where(OutboundMessage.created_at < cutoff, OutboundMessage.body != PURGED)
        .values(body=PURGED)
    ).rowcount
    inbound = session.execute(
        update(InboundMessage)
        .where(InboundMessage.created_at < cutoff, InboundMessage.text != PURGED)
        .values(text=PURGED)
    ).rowcount
    codes = session.execute(
        delete(OneTimeCode).where(OneTimeCode.expires_at < min(cutoff, utcnow() - timedelta(days=1)))
    ).rowcount
    announcements = session.execute(
        update(Announcement).where(Announcement.created_at < cutoff, Announcement.body != PURGED).values(body=PURGED)
    ).rowcount
    if records_older_than is None:
        return PurgeCounts(events, outbound, inbound, codes, announcement_texts=announcements)
    records_cutoff = utcnow() - records_older_than
    audit = session.execute(delete(AuditEvent).where(AuditEvent.at < records_cutoff)).rowcount
    sent = session.execute(delete(OutboundMessage).where(OutboundMessage.created_at < records_cutoff)).rowcount
    received = session.execute(delete(InboundMessage).where(InboundMessage.created_at < records_cutoff)).rowcount
    guardians = forget_unlinked_guardians(session, records_cutoff)
    settings = forget_idle_settings(session, records_cutoff)
    return PurgeCounts(events, outbound, inbound, codes, audit, sent, received, announcements, guardians, settings)


def _contact_since(phone: ColumnElement[str], cutoff: datetime) -> ColumnElement[bool]:
    """Whether ``phone`` was in touch with the service since ``cutoff``: an audit row of it (a
    disclosure, a check, an unlink, an erasure), a code sent to it, a text either way or a USSD
    session (kept 90 days) of it."""
    return (
        exists().where(AuditEvent.phone == phone, AuditEvent.at >= cutoff)
        | exists().where(OneTimeCode.phone == phone, OneTimeCode.created_at >= cutoff)
        | exists().where(InboundMessage.sender == phone, InboundMessage.created_at >= cutoff)
        | exists().where(OutboundMessage.recipient == phone, OutboundMessage.created_at >= cutoff)
        | exists().where(UssdSessionEvent.phone == phone, UssdSessionEvent.created_at >= cutoff)
    )


def forget_unlinked_guardians(session: Session, cutoff: datetime) -> int:
    """Delete the guardian rows (name, phone, account) linked to no learner since before ``cutoff``,
    with no PIN entered and no contact since then; their PIN sessions go with them.

    The age counts from ``unlinked_at``, when the last link came off (set by the database on every
    path: ``unlink-guardian``, a learner deleted with its links; ``models.unlinking``), however
    lately the row itself changed; a guardian never linked (the importer makes none) counts from
    its row's last change. The phone's audit rows and message rows are not the guardian's and keep
    their own age.
    """
    forgotten = (
        func.coalesce(Guardian.unlinked_at, Guardian.updated_at) < cutoff,
        ~exists().where(GuardianLink.guardian_id == Guardian.id),
        ~exists().where(PinSession.guardian_id == Guardian.id, PinSession.verified_at >= cutoff),
        ~_contact_since(Guardian.phone, cutoff),
    )
    return session.execute(delete(Guardian).where(*forgotten).execution_options(synchronize_session=False)).rowcount


def forget_idle_settings(session: Session, cutoff: datetime) -> int:
    """Delete the settings of phones that are no guardian's, unchanged and with no contact since
    ``cutoff``; of such a phone that sent STOP, keep the opt-out and reset its language. Returns the
    rows deleted or reset.

    Conditional statements: a STOP committing meanwhile (PostgreSQL re-checks a row another
    transaction changed) keeps its row, as in ``privacy erase``."""
    idle = (
        PhoneSetting.updated_at < cutoff,
        ~exists().where(Guardian.phone == PhoneSetting.phone),
        ~_contact_since(PhoneSetting.phone, cutoff),
    )
    deleted = session.execute(
        delete(PhoneSetting).where(*idle, PhoneSetting.opted_out.is_(False))
        .execution_options(synchronize_session=False)).rowcount
    reset = session.execute(
        update(PhoneSetting).where(*idle, PhoneSetting.opted_out.is_(True), PhoneSetting.language != DEFAULT_LANGUAGE)
        .values(language=DEFAULT_LANGUAGE).execution_options(synchronize_session=False)).rowcount
    return deleted + reset
