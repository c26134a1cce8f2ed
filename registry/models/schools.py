"""The registry core: institutions, learners, guardians and the links between them, transfers."""

from __future__ import annotations

import enum
from datetime import date, datetime

from sqlalchemy import ForeignKey, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from .base import Base, Timestamped, str_enum


class EnrolmentState(enum.StrEnum):
    ENROLLED = "enrolled"
    TRANSFER_REQUESTED = "transfer_requested"
    RELEASED = "released"


class TransferState(enum.StrEnum):
    REQUESTED = "requested"
    RELEASED = "released"
    ADMITTED = "admitted"
    CANCELLED = "cancelled"


class Institution(Timestamped, Base):
    __tablename__ = "institutions"

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(16), unique=True)  # NEMIS UIC
    name: Mapped[str] = mapped_column(String(200))
    county_code: Mapped[str] = mapped_column(String(3))

    learners: Mapped[list[Learner]] = relationship(back_populates="institution")


class Learner(Timestamped, Base):
    __tablename__ = "learners"
    __table_args__ = (
        Index("ix_learners_birth_certificate_no", "birth_certificate_no"),
        Index("ix_learners_assessment_no", "assessment_no"),
        Index("ix_learners_institution_grade", "institution_id", "grade"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    upi: Mapped[str] = mapped_column(String(32), unique=True)
    first_name: Mapped[str] = mapped_column(String(80))
    middle_name: Mapped[str | None] = mapped_column(String(80))
    last_name: Mapped[str] = mapped_column(String(80))
    date_of_birth: Mapped[date]
    gender: Mapped[str] = mapped_column(String(1))
    birth_certificate_no: Mapped[str | None] = mapped_column(String(32))
    assessment_no: Mapped[str | None] = mapped_column(String(32))
    grade: Mapped[str] = mapped_column(String(16))
    institution_id: Mapped[int] = mapped_column(ForeignKey("institutions.id"))
    enrolment_state: Mapped[EnrolmentState] = mapped_column(
        str_enum(EnrolmentState, "enrolment_state"), default=EnrolmentState.ENROLLED
    )

    institution: Mapped[Institution] = relationship(back_populates="learners")
    guardian_links: Mapped[list[GuardianLink]] = relationship(back_populates="learner")
    transfers: Mapped[list[Transfer]] = relationship(back_populates="learner", order_by="Transfer.id")

    @property
    def masked_name(self) -> str:
        """First name and last initial, as screens show it (``Jane W.``)."""
        return f"{self.first_name} {self.last_name[:1]}." if self.last_name else self.first_name


class Guardian(Timestamped, Base):
    """A phone the registry knows, with its USSD account (PIN) once activated."""

    __tablename__ = "guardians"

    id: Mapped[int] = mapped_column(primary_key=True)
    phone: Mapped[str] = mapped_column(String(16), unique=True)  # E.164
    name: Mapped[str | None] = mapped_column(String(160))
    pin_hash: Mapped[str | None] = mapped_column(String(255))
    activated_at: Mapped[datetime | None]
    pin_failures: Mapped[int] = mapped_column(default=0)
    pin_locked_until: Mapped[datetime | None]
    # When its last link came off (set by the database on every path: ``unlinking``); cleared when
    # a link is added again. ``elimu purge`` counts a guardian's records' age from it.
    unlinked_at: Mapped[datetime | None]

    links: Mapped[list[GuardianLink]] = relationship(back_populates="guardian")

    @property
    def is_active(self) -> bool:
        return self.activated_at is not None and self.pin_hash is not None


class GuardianLink(Timestamped, Base):
    """A learner's guardian (or ``self``: the learner's own phone)."""

    __tablename__ = "guardian_links"
    __table_args__ = (
        UniqueConstraint("learner_id", "guardian_id", name="uq_guardian_links_learner_guardian"),
        Index("ix_guardian_links_guardian_id", "guardian_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    learner_id: Mapped[int] = mapped_column(ForeignKey("learners.id", ondelete="CASCADE"))
    guardian_id: Mapped[int] = mapped_column(ForeignKey("guardians.id", ondelete="CASCADE"))
    relationship_: Mapped[str] = mapped_column("relationship", String(32), default="guardian")
    # Set when this phone proved it knows the learner (identity + date of birth + OTP).
    verified_at: Mapped[datetime | None]

    learner: Mapped[Learner] = relationship(back_populates="guardian_links")
    guardian: Mapped[Guardian] = relationship(back_populates="links")


class Transfer(Timestamped, Base):
    """A NEMIS transfer: the receiving school requests, the current school releases, the receiver admits."""

    __tablename__ = "transfers"
    __table_args__ = (Index("ix_transfers_learner_state", "learner_id", "state"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    learner_id: Mapped[int] = mapped_column(ForeignKey("learners.id", ondelete="CASCADE"))
    from_institution_id: Mapped[int] = mapped_column(ForeignKey("institutions.id"))
    to_institution_id: Mapped[int | None] = mapped_column(ForeignKey("institutions.id"))
    state: Mapped[TransferState] = mapped_column(str_enum(TransferState, "transfer_state"))
    requested_at: Mapped[datetime | None]
    released_at: Mapped[datetime | None]
    admitted_at: Mapped[datetime | None]

    learner: Mapped[Learner] = relationship(back_populates="transfers")
    from_institution: Mapped[Institution] = relationship(foreign_keys=[from_institution_id])
    to_institution: Mapped[Institution | None] = relationship(foreign_keys=[to_institution_id])


class PhoneSetting(Timestamped, Base):
    """Per-phone preferences for any caller, linked or not: language and SMS opt-out (STOP)."""

    __tablename__ = "phone_settings"

    phone: Mapped[str] = mapped_column(String(16), primary_key=True)
    language: Mapped[str] = mapped_column(String(2), default="en")
    opted_out: Mapped[bool] = mapped_column(default=False)
