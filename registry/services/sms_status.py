"""Where the SMS pipeline stands, from the outbox (the truth): what an operator asks on results day.

Counts of the messages made since a moment, by kind and status; how long the oldest message still
queued has waited; inbound texts not yet answered; the latest announcements' progress. Queries
only: the queue depths in Redis are the caller's (``workers.queues.Queues.depths``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from ..models import Announcement, InboundMessage, MessageStatus, OutboundMessage
from ..outbox import CANCELLED


@dataclass(frozen=True)
class AnnouncementProgress:
    id: int
    institution_code: str
    grade: str | None
    created_at: datetime
    recipients: int
    by_status: dict[str, int] = field(default_factory=dict)
    cancelled: int = 0  # of the ``failed`` in ``by_status``: stopped by ``elimu sms cancel-announcement``


@dataclass(frozen=True)
class PipelineStatus:
    since: datetime
    by_kind: dict[str, dict[str, int]]  # kind -> status -> messages made since ``since``
    queued: int  # every message still queued, however old
    oldest_queued_at: datetime | None
    unanswered_inbound: int
    oldest_unanswered_at: datetime | None
    announcements: list[AnnouncementProgress]


def pipeline_status(session: Session, since: datetime, announcements: int = 5) -> PipelineStatus:
    """The outbox since ``since``, what still waits, and the latest ``announcements``."""
    by_kind: dict[str, dict[str, int]] = {}
    made = (
        select(OutboundMessage.kind, OutboundMessage.status, func.count())
        .where(OutboundMessage.created_at >= since)
        .group_by(OutboundMessage.kind, OutboundMessage.status)
    )
    for kind, status, count in session.execute(made):
        by_kind.setdefault(str(kind), {})[str(status)] = count
    queued, oldest_queued = session.execute(
        select(func.count(), func.min(OutboundMessage.created_at)).where(OutboundMessage.status == MessageStatus.QUEUED)
    ).one()
    unanswered, oldest_unanswered = session.execute(
        select(func.count(), func.min(InboundMessage.created_at)).where(InboundMessage.handled_at.is_(None))
    ).one()
    return PipelineStatus(since, by_kind, queued, oldest_queued, unanswered, oldest_unanswered,
                          _announcements(session, announcements))


def _announcements(session: Session, limit: int) -> list[AnnouncementProgress]:
    latest = list(session.scalars(select(Announcement).order_by(Announcement.id.desc()).limit(limit)))
    if not latest:
        return []
    counts: dict[int, dict[str, int]] = {}
    cancelled: dict[int, int] = {}
    was_cancelled = (OutboundMessage.failure_reason == CANCELLED).label("cancelled")
    rows = session.execute(
        select(OutboundMessage.announcement_id, OutboundMessage.status, was_cancelled, func.count())
        .where(OutboundMessage.announcement_id.in_([a.id for a in latest]))
        .group_by(OutboundMessage.announcement_id, OutboundMessage.status, was_cancelled)
    )
    for announcement_id, status, stopped, count in rows:
        by_status = counts.setdefault(announcement_id, {})
        by_status[str(status)] = by_status.get(str(status), 0) + count
        if stopped:
            cancelled[announcement_id] = cancelled.get(announcement_id, 0) + count
    return [
        AnnouncementProgress(a.id, a.institution_code, a.grade, a.created_at, a.recipients, counts.get(a.id, {}),
                             cancelled.get(a.id, 0))
        for a in latest
    ]
