"""Import results.csv: one row per candidate per exam sitting, written in batches of upserts.

A result is keyed by exam, year and index number; grades and subject lists are stored exactly as
KNEC wrote them once they pass validation (signs included: ``A-`` is not ``A``). A ``upi`` links the
result to a learner; a row whose UPI the registry does not know is rejected (import learners
first). Imported series stay unreleased until ``elimu results release EXAM YEAR``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from ..db import Database
from ..exams import check_grade, check_points, check_subjects, check_year, exam_named
from ..identifiers import INDEX_NUMBER_EXAMS, normalize_index_number, normalize_upi
from ..models import ExamResult, ExamSeries, Learner
from . import fields as f
from .batches import BatchWriter, Record, run_import
from .bulk import Bulk
from .first_rows import FirstRows
from .report import ImportReport, Outcome, Problems, ProgressHandler, RejectHandler, RowRejected, WarnHandler

COLUMNS = ("exam", "year", "index_number", "upi", "candidate_name", "mean_grade", "points", "subjects")
RESULT_FIELDS = ("upi", "candidate_name", "mean_grade", "points", "subjects")
GRADE_FIELDS = RESULT_FIELDS[1:]  # what a reply tells: two rows of a file may not disagree on it

# an index number as a spreadsheet writes it once read as a number: leading 0 lost, ".0", exponent
_SPREADSHEET_NUMBER = re.compile(r"[1-9][0-9]{9}|[1-9][0-9]{9,10}\.0+|[0-9]+(\.[0-9]+)?[eE]\+?[0-9]+")
_results = ExamResult.__table__
_series = ExamSeries.__table__
_learners = Learner.__table__


@dataclass(slots=True)
class ResultRow:
    """One validated row of results.csv."""

    line: int
    exam: str
    year: int
    index_number: str
    upi: str | None
    candidate_name: str
    mean_grade: str
    points: int | None
    subjects: str

    @property
    def key(self) -> tuple[str, int, str]:
        return (self.exam, self.year, self.index_number)

    def values(self, names: tuple[str, ...] = RESULT_FIELDS) -> tuple[object, ...]:
        return tuple(getattr(self, n) for n in names)


def index_number(raw: str, exam: str) -> str:
    """``normalize_index_number``, its reason naming what a spreadsheet does to a number as text:
    a leading 0 dropped, or the number written as ``1.93E+10``. Never repaired: a guess could give
    one candidate another's results."""
    try:
        return normalize_index_number(raw, exam)
    except ValueError as exc:
        if exam in INDEX_NUMBER_EXAMS and _SPREADSHEET_NUMBER.fullmatch(raw.strip()):
            raise ValueError(f"{exc} (a spreadsheet saved it as a number? keep the column as text)") from None
        raise


def parse_result(line: int, record: dict[str, str], today: date) -> ResultRow:
    """Validate one record; RowRejected names every problem in it."""
    check = Problems()
    exam = check(exam_named, record["exam"])
    if exam is None:
        check.raise_any()
    row = ResultRow(
        line=line,
        exam=exam.name,
        year=check(check_year, exam, record["year"], today),
        index_number=check(index_number, record["index_number"], exam.name),
        upi=check(normalize_upi, record["upi"]) if record["upi"] else None,
        candidate_name=check(f.text, record["candidate_name"], "candidate_name", 200, required=True),
        mean_grade=check(check_grade, exam, record["mean_grade"]) if record["mean_grade"] else None,
        points=check(check_points, exam, record["points"]),
        subjects=check(check_subjects, exam, record["subjects"]),
    )
    if not record["mean_grade"]:
        check.reasons.append("mean_grade is required")
    check.raise_any()
    return row


class ResultWriter(BatchWriter[ResultRow]):
    """Writes batches of result rows; remembers exam series across batches, and the first row of
    each candidate in the file, so a later row giving other grades is rejected wherever it lies
    (rows differing in their ``upi`` alone are told apart by the batch, which knows the UPIs)."""

    def __init__(self) -> None:
        super().__init__()
        self.series: dict[tuple[str, int], int] = {}
        self.first_rows = FirstRows(GRADE_FIELDS)

    def parse(self, line: int, record: Record, today: date) -> ResultRow:
        row = parse_result(line, record, today)
        earlier = self.first_rows.differ("|".join(map(str, row.key)), line, row.values(GRADE_FIELDS))
        if earlier is not None:
            raise _differs(*earlier)
        return row

    def close(self) -> None:
        self.first_rows.close()

    def group_key(self, row: ResultRow) -> object:
        return row.key

    def committed(self) -> None:
        self.series.update(self.pop_staged())

    def write(self, session: Session, rows: list[ResultRow]) -> dict[int, Outcome | RowRejected]:
        bulk = Bulk(session)
        bulk.begin_write()
        series_ids = self._series_ids(session, {(r.exam, r.year) for r in rows})
        released = self._released(session, set(series_ids.values()))
        learner_ids = self._learner_ids(bulk, rows)
        outcomes: dict[int, Outcome | RowRejected] = {}
        firsts: dict[tuple[str, int, str], ResultRow] = {}
        for row in rows:
            if row.upi and row.upi not in learner_ids:
                outcomes[row.line] = RowRejected(f"unknown UPI {row.upi} (import learners first)")
                continue
            first = firsts.setdefault(row.key, row)
            if first is not row:
                differ = [n for n in RESULT_FIELDS if getattr(row, n) != getattr(first, n)]
                outcomes[row.line] = _differs(first.line, differ) if differ else Outcome.UNCHANGED
        wanted_series = set(series_ids.values())
        columns = (_results.c.id, _results.c.series_id, _results.c.index_number, _results.c.learner_id,
                   *(_results.c[n] for n in RESULT_FIELDS))  # fmt: skip
        existing = {
            (r.series_id, r.index_number): r
            for r in bulk.select_in(columns, _results.c.index_number, {r.index_number for r in firsts.values()})
            if r.series_id in wanted_series
        }
        inserts: list[dict[str, Any]] = []
        changes: list[dict[str, Any]] = []
        for row in firsts.values():
            series_id = series_ids[(row.exam, row.year)]
            found = existing.get((series_id, row.index_number))
            values: dict[str, Any] = {n: getattr(row, n) for n in RESULT_FIELDS}
            if row.upi:
                values["learner_id"] = learner_ids[row.upi]
            elif found is not None:  # a blank upi says nothing of the learner: a linked result stays linked
                values["upi"], values["learner_id"] = found.upi, found.learner_id
            else:
                values["learner_id"] = None
            if values["subjects"] is None:
                values["subjects"] = ""
            if found is None:
                inserts.append({"series_id": series_id, "index_number": row.index_number, **values})
                outcomes[row.line] = Outcome.ADDED
            elif all(getattr(found, n) == v for n, v in values.items()):
                outcomes[row.line] = Outcome.UNCHANGED
            else:
                changes.append({"id": found.id, **values})
                outcomes[row.line] = Outcome.UPDATED
                if series_id in released:
                    self._note_correction(row, found, values)
        bulk.insert(_results, inserts, order=("series_id", "index_number"))
        bulk.update_by_id(_results, changes)
        return outcomes

    def _released(self, session: Session, series_ids: set[int]) -> set[int]:
        """Those of ``series_ids`` already released: their results answer queries now."""
        query = select(_series.c.id).where(_series.c.id.in_(series_ids), _series.c.released_at.is_not(None))
        return set(session.scalars(query))

    def _note_correction(self, row: ResultRow, found: Any, values: dict[str, Any]) -> None:
        """Tell the operator that a released result changes: what it was, and where to see who got it."""
        changes = [f"{n} {getattr(found, n)!r} -> {values[n]!r}" for n in GRADE_FIELDS if getattr(found, n) != values[n]]
        if changes:
            self.note(row.line, (
                f"corrects released {row.exam} {row.year} {row.index_number}: {', '.join(changes)}; "
                f"replies already sent: elimu audit --index {row.index_number}"
            ))

    def _learner_ids(self, bulk: Bulk, rows: list[ResultRow]) -> dict[str, int]:
        """Learner ids by UPI, for the batch's UPIs the registry knows (one query)."""
        upis = {r.upi for r in rows if r.upi}
        return {r.upi: r.id for r in bulk.select_in((_learners.c.id, _learners.c.upi), _learners.c.upi, upis)}

    def _series_ids(self, session: Session, wanted: set[tuple[str, int]]) -> dict[tuple[str, int], int]:
        ids = {key: self.series[key] for key in wanted if key in self.series}
        staged = {}
        for exam, year in sorted(wanted - set(ids)):
            found = session.scalar(select(_series.c.id).where(_series.c.exam == exam, _series.c.year == year))
            if found is None:
                found = session.execute(_series.insert().values(exam=exam, year=year).returning(_series.c.id)).scalar_one()
            ids[(exam, year)] = staged[(exam, year)] = found
        self.stage(staged)
        return ids


def _differs(line: int, fields: list[str]) -> RowRejected:
    return RowRejected(f"differs from line {line} (same exam, year and index_number): {', '.join(fields)}")


def import_results(
    db: Database,
    records: Iterable[tuple[int, Record | str]],
    *,
    batch_size: int = 1000,
    on_reject: RejectHandler | None = None,
    progress: ProgressHandler | None = None,
    today: date | None = None,
    writers: int | None = None,
    on_warning: WarnHandler | None = None,
    report: ImportReport | None = None,
) -> ImportReport:
    """Import result records (``(line, record)`` pairs, e.g. from ``CsvFile``); see the module doc."""
    return run_import(
        db, records, ResultWriter(), batch_size=batch_size, on_reject=on_reject, progress=progress,
        today=today, writers=writers, on_warning=on_warning, report=report,
    )


__all__ = ["COLUMNS", "ResultRow", "import_results", "parse_result"]
