"""Storage limitation (DPA 2019 s.25): purge what the service no longer needs."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import delete, update
from sqlalchemy.orm import Session

from ..models import InboundMessage, OneTimeCode, OutboundMessage, UssdSessionEvent, utcnow

PURGED = "[purged]"


@dataclass(frozen=True)
class PurgeCounts:
    session_events: int
    outbound_bodies: int
    inbound_texts: int
    one_time_codes: int


def purge(session: Session, older_than: timedelta) -> PurgeCounts:
    """Delete USSD session events and expired codes, and blank message bodies, older than ``older_than``.

    Message rows themselves stay (ids, statuses and costs are billing records); only their text goes.
    The audit trail is kept: it is the record of who saw what.
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
    return PurgeCounts(events, outbound, inbound, codes)
