"""Storage limitation (DPA 2019 s.25): purge what the service no longer needs.

Two ages: message texts and USSD session events go after ``ELIMU_RETENTION_DAYS`` (90 by default);
the records kept past that (the audit trail, and the message rows both ways as billing records) go
after ``ELIMU_RECORDS_RETENTION_DAYS`` (five years by default, the Tax Procedures Act's period for
billing records). ``elimu purge`` (a daily timer) applies both.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import delete, update
from sqlalchemy.orm import Session

from ..models import (
    Announcement,
    AuditEvent,
    InboundMessage,
    OneTimeCode,
    OutboundMessage,
    UssdSessionEvent,
    utcnow,
)

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


def purge(session: Session, older_than: timedelta, records_older_than: timedelta | None = None) -> PurgeCounts:
    """Delete USSD session events and expired codes, and blank message bodies (an announcement's own
    copy of its text too: a school may name a learner in it), older than ``older_than``;
    with ``records_older_than``, also delete the audit rows and message rows older than that.

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
    return PurgeCounts(events, outbound, inbound, codes, audit, sent, received, announcements)
