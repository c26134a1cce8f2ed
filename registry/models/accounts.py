"""One-time codes sent by SMS (activation, UPI, PIN reset), stored only as salted hashes, and the
USSD session where an account last entered its PIN."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from .base import Base, Timestamped


class OneTimeCode(Timestamped, Base):
    __tablename__ = "one_time_codes"
    __table_args__ = (Index("ix_one_time_codes_phone_purpose", "phone", "purpose", "created_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    phone: Mapped[str] = mapped_column(String(16))
    purpose: Mapped[str] = mapped_column(String(16))  # activate | upi | pin_reset
    learner_id: Mapped[int | None] = mapped_column(ForeignKey("learners.id", ondelete="CASCADE"))
    code_hash: Mapped[str] = mapped_column(String(255))
    expires_at: Mapped[datetime]
    attempts: Mapped[int] = mapped_column(default=0)
    used_at: Mapped[datetime | None]


class PinSession(Base):
    """Where an account last had its right PIN entered: the USSD session and when. Only that session,
    and only for a while, may see learner data (``services.accounts.require_pin``). One row per
    account, replaced at each right PIN; it goes with the account's guardian row."""

    __tablename__ = "pin_sessions"

    guardian_id: Mapped[int] = mapped_column(ForeignKey("guardians.id", ondelete="CASCADE"), primary_key=True)
    session_id: Mapped[str] = mapped_column(String(100))
    verified_at: Mapped[datetime]
