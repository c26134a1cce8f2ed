"""Delivery reports applied to the outbox: idempotent and monotonic.

States only move forward (queued < submitted < sent < a final state); a final state (delivered,
failed, rejected, expired) is never undone, so a late ``Sent`` after ``Success`` changes nothing and
the same report twice changes nothing the second time.
"""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from ..models import MessageStatus, OutboundMessage, utcnow

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
) -> ReportOutcome:
    """Move the message with ``provider_message_id`` to ``status`` if that is a step forward."""
    now = at or utcnow()
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
