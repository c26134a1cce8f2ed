"""Exam results as KNEC publishes them, and their release (embargo) per exam series."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from .base import Base, Timestamped
from .schools import Learner


class ExamSeries(Timestamped, Base):
    """One exam sitting (``KCSE 2025``); results answer only once ``released_at`` is set."""

    __tablename__ = "exam_series"
    __table_args__ = (UniqueConstraint("exam", "year", name="uq_exam_series_exam_year"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    exam: Mapped[str] = mapped_column(String(8))
    year: Mapped[int]
    released_at: Mapped[datetime | None]

    @property
    def released(self) -> bool:
        return self.released_at is not None


class ExamResult(Timestamped, Base):
    __tablename__ = "exam_results"
    __table_args__ = (
        UniqueConstraint("series_id", "index_number", name="uq_exam_results_series_index"),
        Index("ix_exam_results_index_number", "index_number"),
        Index("ix_exam_results_learner_id", "learner_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    series_id: Mapped[int] = mapped_column(ForeignKey("exam_series.id"))
    index_number: Mapped[str] = mapped_column(String(32))  # text: leading zeros matter
    upi: Mapped[str | None] = mapped_column(String(32))
    learner_id: Mapped[int | None] = mapped_column(ForeignKey("learners.id", ondelete="SET NULL"))
    candidate_name: Mapped[str] = mapped_column(String(200))
    mean_grade: Mapped[str] = mapped_column(String(8))
    points: Mapped[int | None]
    subjects: Mapped[str] = mapped_column(Text, default="")  # exactly as imported: ENG:B+;KIS:A-

    series: Mapped[ExamSeries] = relationship()
    learner: Mapped[Learner | None] = relationship()

    @property
    def released(self) -> bool:
        return self.series.released
