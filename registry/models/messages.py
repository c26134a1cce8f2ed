"""SMS both ways: the outbox (the truth for every outbound message) and inbound messages."""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import Index, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from .base import Base, Timestamped, str_enum


class MessageKind(enum.StrEnum):
    OTP = "otp"
    UPI = "upi"
    REPLY = "reply"
    NOTICE = "notice"
    ANNOUNCEMENT = "announcement"


class MessageStatus(enum.StrEnum):
    QUEUED = "queued"
    SUBMITTED = "submitted"
    SENT = "sent"
    DELIVERED = "delivered"
    FAILED = "failed"
    REJECTED = "rejected"
    EXPIRED = "expired"


class Priority(enum.StrEnum):
    """RQ queue names, most urgent first."""

    OTP = "sms-otp"
    REPLY = "sms-reply"
    BULK = "sms-bulk"


PRIORITY_BY_KIND = {
    MessageKind.OTP: Priority.OTP,
    MessageKind.UPI: Priority.OTP,
    MessageKind.REPLY: Priority.REPLY,
    MessageKind.NOTICE: Priority.REPLY,
    MessageKind.ANNOUNCEMENT: Priority.BULK,
}


class OutboundMessage(Timestamped, Base):
    __tablename__ = "outbound_messages"
    __table_args__ = (
        # Partial: each holds only the rows its scans want, so an update by id with a status check
        # is never planned through one (see migration 0002).
        Index("ix_outbound_messages_due", "next_attempt_at", postgresql_where=text(f"status = '{MessageStatus.QUEUED}'"),
              sqlite_where=text(f"status = '{MessageStatus.QUEUED}'")),
        Index("ix_outbound_messages_in_flight", "submitted_at",
              postgresql_where=text(f"status = '{MessageStatus.SUBMITTED}' AND accepted_at IS NULL"),
              sqlite_where=text(f"status = '{MessageStatus.SUBMITTED}' AND accepted_at IS NULL")),
        Index("ix_outbound_messages_unconfirmed", "accepted_at",
              postgresql_where=text(f"status = '{MessageStatus.SUBMITTED}' AND provider_message_id IS NULL "
                                    "AND accepted_at IS NOT NULL"),
              sqlite_where=text(f"status = '{MessageStatus.SUBMITTED}' AND provider_message_id IS NULL "
                                "AND accepted_at IS NOT NULL")),
        Index("ix_outbound_messages_recipient", "recipient", "created_at"),
        Index("ix_outbound_messages_provider_message_id", "provider_message_id"),
        Index("ix_outbound_messages_announcement_id", "announcement_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    recipient: Mapped[str] = mapped_column(String(16))  # E.164
    kind: Mapped[MessageKind] = mapped_column(str_enum(MessageKind, "message_kind"))
    body: Mapped[str] = mapped_column(Text)  # redacted for OTPs
    priority: Mapped[Priority] = mapped_column(str_enum(Priority, "message_priority"))
    status: Mapped[MessageStatus] = mapped_column(str_enum(MessageStatus, "message_status"), default=MessageStatus.QUEUED)
    attempts: Mapped[int] = mapped_column(default=0)
    next_attempt_at: Mapped[datetime | None]
    provider: Mapped[str | None] = mapped_column(String(32))
    provider_message_id: Mapped[str | None] = mapped_column(String(100))
    status_code: Mapped[int | None]
    cost: Mapped[str | None] = mapped_column(String(32))
    failure_reason: Mapped[str | None] = mapped_column(String(200))
    link_id: Mapped[str | None] = mapped_column(String(100))
    announcement_id: Mapped[int | None]
    submitted_at: Mapped[datetime | None]  # handed to the provider (claimed by a worker)
    accepted_at: Mapped[datetime | None]  # the provider accepted it: it is never submitted again
    sent_at: Mapped[datetime | None]
    delivered_at: Mapped[datetime | None]


class InboundMessage(Timestamped, Base):
    __tablename__ = "inbound_messages"
    __table_args__ = (
        Index("ix_inbound_messages_sender", "sender", "created_at"),
        # Unhandled messages only: the reconciler's scan stays small however many are handled.
        Index(
            "ix_inbound_messages_unhandled",
            "created_at",
            postgresql_where=text("handled_at IS NULL"),
            sqlite_where=text("handled_at IS NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    provider_id: Mapped[str] = mapped_column(String(100), unique=True)  # AT's id: dedupe key
    sender: Mapped[str] = mapped_column(String(16))
    short_code: Mapped[str | None] = mapped_column(String(32))
    text: Mapped[str] = mapped_column(Text)
    link_id: Mapped[str | None] = mapped_column(String(100))
    network_code: Mapped[str | None] = mapped_column(String(16))
    received_at: Mapped[datetime | None]
    command: Mapped[str | None] = mapped_column(String(32))
    handled_at: Mapped[datetime | None]


class Announcement(Timestamped, Base):
    __tablename__ = "announcements"

    id: Mapped[int] = mapped_column(primary_key=True)
    institution_code: Mapped[str] = mapped_column(String(16))
    grade: Mapped[str | None] = mapped_column(String(16))
    body: Mapped[str] = mapped_column(Text)
    recipients: Mapped[int] = mapped_column(default=0)
    # ``elimu sms cancel-announcement``: from then on a worker ends each of its messages it takes
    cancelled_at: Mapped[datetime | None] = mapped_column(default=None)
