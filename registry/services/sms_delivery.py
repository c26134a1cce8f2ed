"""Delivery reports applied to the outbox: idempotent and monotonic.

States only move forward (queued < submitted < sent < a final state); a final state (delivered,
failed, rejected, expired) is never undone, so a late ``Sent`` after ``Success`` changes nothing and
the same report twice changes nothing the second time.

A report for an id no message has, naming a phone, is matched to the oldest message to that phone
taken without a provider id in the last day (a premium reply whose send answer was lost, or a 2xx
answer that could not be read): the message takes the report's id, then the report applies. Not
while a send to that phone is still in flight, though: the report may be that send's, come before
its answer was recorded (the web keeps such reports, and the reconciler applies them again).
Messages no report confirmed within the day expire (``settle_unconfirmed``).
"""

from __future__ import annotations

import enum
from datetime import datetime, timedelta

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from ..models import MessageStatus, OutboundMessage, utcnow
from ..outbox import LEASE

RANK = {
    MessageStatus.QUEUED: 0,
    MessageStatus.SUBMITTED: 1,
    MessageStatus.SENT: 2,
    MessageStatus.DELIVERED: 3,
    MessageStatus.FAILED: 3,
    MessageStatus.REJECTED: 3,
    MessageStatus.EXPIRED: 3,
}
FINAL = frozenset(status for status, rank in RANK.items() if rank == 3)
ADOPT_WINDOW = timedelta(hours=24)  # how long a message taken without an id waits for its report


class ReportOutcome(enum.StrEnum):
    UPDATED = "updated"
    UNCHANGED = "unchanged"  # a repeat, or older than what we know
    UNKNOWN = "unknown"  # no message has this provider id


def apply_delivery_report(
    session: Session,
    provider_message_id: str,
    status: MessageStatus,
    failure_reason: str | None = None,
    at: datetime | None = None,
    phone: str | None = None,
) -> ReportOutcome:
    """Move the message with ``provider_message_id`` to ``status`` if that is a step forward; an
    unknown id names the message to ``phone`` whose id was never learnt (``adopt``)."""
    now = at or utcnow()
    outcome = _apply(session, provider_message_id, status, failure_reason, now)
    if outcome is not ReportOutcome.UNKNOWN or not phone:
        return outcome
    # Twice: a concurrent report may take the chosen message first (PostgreSQL re-checks the row
    # once its lock is free). It may have been this id's report (then the id is known now), or
    # another id's (then the next message waiting is this one's). No candidate: nothing to retry.
    for _ in range(2):
        adopted = adopt(session, provider_message_id, phone, now)
        if adopted is None:
            return outcome
        if adopted:
            return _apply(session, provider_message_id, status, failure_reason, now)
        outcome = _apply(session, provider_message_id, status, failure_reason, now)
        if outcome is not ReportOutcome.UNKNOWN:
            break
    return outcome


# Taken (or maybe taken) by the provider without telling its id: an answer lost or unreadable
# (the rows of the partial index ``ix_outbound_messages_unconfirmed``)
_TAKEN_WITHOUT_ID = (
    OutboundMessage.status == MessageStatus.SUBMITTED, OutboundMessage.provider_message_id.is_(None),
    OutboundMessage.accepted_at.is_not(None),
)


def _waiting(phone: str, now: datetime):
    """The messages to ``phone`` taken without a provider id in the last ``ADOPT_WINDOW``."""
    return (OutboundMessage.recipient == phone, *_TAKEN_WITHOUT_ID, OutboundMessage.accepted_at >= now - ADOPT_WINDOW)


def adopt(session: Session, provider_message_id: str, phone: str, now: datetime) -> bool | None:
    """Give ``provider_message_id`` to the oldest message to ``phone`` that the provider took (or
    may have) without telling its id, in the last ``ADOPT_WINDOW``, unless a send to ``phone`` is
    in flight (the report may be its own). True if one took it; False if a concurrent report took
    the one chosen; None if there was none to take."""
    in_flight = (
        select(OutboundMessage.id)
        .where(OutboundMessage.recipient == phone, OutboundMessage.status == MessageStatus.SUBMITTED,
               OutboundMessage.accepted_at.is_(None), OutboundMessage.submitted_at > now - LEASE)
        .exists()
    )
    candidate = session.scalar(
        select(OutboundMessage.id).where(*_waiting(phone, now), ~in_flight).order_by(OutboundMessage.id).limit(1)
    )
    if candidate is None:
        return None
    # Checked again in the UPDATE's own snapshot, and again by PostgreSQL on the row once its lock
    # is free: still waiting (not given an id, not expired meanwhile), no send to the phone in
    # flight, and no message holding this id already (its send recorded since the read above).
    known = select(OutboundMessage.id).where(OutboundMessage.provider_message_id == provider_message_id).exists()
    result = session.execute(
        update(OutboundMessage)
        .where(OutboundMessage.id == candidate, *_waiting(phone, now), ~in_flight, ~known)
        .values(provider_message_id=provider_message_id, updated_at=now)
        .execution_options(synchronize_session=False)
    )
    return bool(result.rowcount)


def settle_unconfirmed(session: Session, now: datetime) -> int:
    """Expire the messages taken without a provider id that no report confirmed within
    ``ADOPT_WINDOW``: not resent (a premium reply would be charged twice), and no longer waited for."""
    result = session.execute(
        update(OutboundMessage)
        .where(*_TAKEN_WITHOUT_ID, OutboundMessage.accepted_at < now - ADOPT_WINDOW)
        .values(status=MessageStatus.EXPIRED, updated_at=now,
                failure_reason="no delivery report within 24 h of a lost or unreadable answer; not resent")
        .execution_options(synchronize_session=False)
    )
    return result.rowcount or 0


def _apply(
    session: Session, provider_message_id: str, status: MessageStatus, failure_reason: str | None, now: datetime
) -> ReportOutcome:
    earlier = [s for s, rank in RANK.items() if rank < RANK[status]]
    values: dict[str, object] = {"status": status, "updated_at": now}
    if status is MessageStatus.SENT:
        values["sent_at"] = func.coalesce(OutboundMessage.sent_at, now)
        if failure_reason is not None:  # on its way with a note (AbsentSubscriber: not reachable yet)
            values["failure_reason"] = failure_reason[:200]
    elif status is MessageStatus.DELIVERED:
        values["delivered_at"] = now
        values["failure_reason"] = None
    elif status in FINAL:
        values["failure_reason"] = (failure_reason or status.value)[:200]
    result = session.execute(
        update(OutboundMessage)
        .where(OutboundMessage.provider_message_id == provider_message_id, OutboundMessage.status.in_(earlier))
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    if result.rowcount:
        return ReportOutcome.UPDATED
    known = session.scalar(
        select(OutboundMessage.id).where(OutboundMessage.provider_message_id == provider_message_id).limit(1)
    )
    return ReportOutcome.UNCHANGED if known is not None else ReportOutcome.UNKNOWN
