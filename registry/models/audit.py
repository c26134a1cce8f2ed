"""The disclosure audit trail and USSD end-of-session events."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from .base import Base, Timestamped, utcnow


class AuditEvent(Base):
    """One disclosure of a learner datum: who (phone), whose (learner), what, where, when."""

    __tablename__ = "audit_events"
    __table_args__ = (
        Index("ix_audit_events_learner", "learner_id", "at"),
        Index("ix_audit_events_phone", "phone", "at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(default=utcnow)
    phone: Mapped[str] = mapped_column(String(16))
    learner_id: Mapped[int | None] = mapped_column(ForeignKey("learners.id", ondelete="SET NULL"))
    action: Mapped[str] = mapped_column(String(40))  # upi_sent, status_shown, results_replied, ...
    channel: Mapped[str] = mapped_column(String(8))  # ussd | sms | cli
    reference: Mapped[str | None] = mapped_column(String(100))  # session or message id
    detail: Mapped[str | None] = mapped_column(String(200))


class UssdSessionEvent(Timestamped, Base):
    """AT's end-of-session notification, one row per session (upserted)."""

    __tablename__ = "ussd_session_events"

    id: Mapped[int] = mapped_column(primary_key=True)
    session_id: Mapped[str] = mapped_column(String(100), unique=True)
    phone: Mapped[str | None] = mapped_column(String(32))
    service_code: Mapped[str | None] = mapped_column(String(32))
    network_code: Mapped[str | None] = mapped_column(String(16))
    status: Mapped[str | None] = mapped_column(String(16))
    duration_ms: Mapped[int | None]
    hops_count: Mapped[int | None]
    last_input: Mapped[str | None] = mapped_column(Text)
    error_message: Mapped[str | None] = mapped_column(Text)
    cost: Mapped[str | None] = mapped_column(String(32))
    event_date: Mapped[str | None] = mapped_column(String(32))
