"""Exam results: the lookup the SMS and USSD services make, and their release (end of embargo)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session, contains_eager

from ..exams import exam_named
from ..models import AuditEvent, ExamResult, ExamSeries, utcnow
from .audit import results_of_series


class UnknownSeries(LookupError):
    """No results were imported for that exam and year."""


@dataclass(frozen=True)
class SeriesStatus:
    """One exam series as an operator checks it on results day."""

    exam: str
    year: int
    results: int  # results imported
    linked: int  # of them linked to a learner of the registry
    released_at: datetime | None


def find_result(session: Session, exam: str, index_number: str, year: int | None = None) -> ExamResult | None:
    """The result of one candidate, or None when unknown.

    With ``year``, that year's result. Without, the latest released year; when none of the
    candidate's years is released yet, the latest year (the caller checks ``.released`` and says
    the results are not out yet).
    """
    query = (
        select(ExamResult)
        .join(ExamResult.series)
        .options(contains_eager(ExamResult.series))
        .where(ExamSeries.exam == exam.strip().upper(), ExamResult.index_number == index_number.strip())
    )
    if year is not None:
        return session.scalars(query.where(ExamSeries.year == year).limit(1)).first()
    results = list(session.scalars(query.order_by(ExamSeries.year.desc())))
    released = [r for r in results if r.series.released]
    if released:
        return released[0]
    return results[0] if results else None


def _locked_series(session: Session, name: str, year: int) -> tuple[ExamSeries, int]:
    """The series ``name`` ``year``, its row locked to the end of the transaction, and how many
    results it holds; ``UnknownSeries`` when none was imported."""
    series = session.scalars(
        select(ExamSeries).where(ExamSeries.exam == name, ExamSeries.year == year).with_for_update()
    ).first()
    if series is None:
        raise UnknownSeries(f"no {name} {year} results have been imported")
    count = session.scalar(select(func.count()).select_from(ExamResult).where(ExamResult.series_id == series.id)) or 0
    return series, count


def release_results(session: Session, exam: str, year: int) -> tuple[ExamSeries, int, bool]:
    """Publish one series: ``(series, number of results, whether it was already released)``.

    Releasing twice keeps the first release time. A series holding no results (every row of its
    file was rejected) is not released: results imported into it later would answer at once.
    """
    name = exam_named(exam).name
    series, count = _locked_series(session, name, year)
    already = series.released
    if not already and not count:
        raise UnknownSeries(f"no {name} {year} results have been imported (every row was rejected)")
    if not already:
        series.released_at = utcnow()
        session.flush()
    return series, count, already


@dataclass(frozen=True)
class Withdrawal:
    """A release taken back: the series, its results, and when it had been released."""

    series: ExamSeries
    results: int
    released_at: datetime | None  # when it had been released; None: it was not released


def withdraw_release(session: Session, exam: str, year: int) -> Withdrawal:
    """Take a release back (one made by mistake, or early): queries answer "not yet released" again
    from the next message on. A series not released is left as it is.

    The series row is locked first: on PostgreSQL that waits for the inbound batches that read the
    series before (``sms_replies.prefetch_results`` share-locks it), so once the caller commits no
    more grades of it go out; :func:`answers_since`, asked after the commit, counts theirs too."""
    name = exam_named(exam).name
    series, count = _locked_series(session, name, year)
    released_at = series.released_at
    if released_at is not None:
        series.released_at = None
        session.flush()
    return Withdrawal(series, count, released_at)


def answers_since(session: Session, exam: str, year: int, since: datetime) -> int:
    """The results replies of ``exam`` ``year`` in the audit trail since ``since`` (each an answer
    already disclosed), read from ``ix_audit_events_series`` (the series' rows since ``since``);
    still a count of up to a results day's million rows: ask it after the withdraw has committed,
    not while the series row is locked."""
    return session.scalar(
        select(func.count()).select_from(AuditEvent)
        .where(results_of_series(exam, year), AuditEvent.at >= since)
    ) or 0


def series_status(session: Session) -> list[SeriesStatus]:
    """Every exam series with its counts of results and whether it is released (one query)."""
    query = (
        select(ExamSeries.exam, ExamSeries.year, func.count(ExamResult.id), func.count(ExamResult.learner_id),
               ExamSeries.released_at)
        .outerjoin(ExamResult, ExamResult.series_id == ExamSeries.id)
        .group_by(ExamSeries.id, ExamSeries.exam, ExamSeries.year, ExamSeries.released_at)
        .order_by(ExamSeries.exam, ExamSeries.year.desc())
    )
    return [SeriesStatus(*row) for row in session.execute(query)]
