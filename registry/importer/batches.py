"""The import loop shared by learners and results: parse, batch, write with retry, count, report."""

from __future__ import annotations

import queue
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date
from typing import Generic, TypeVar

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from ..db import Database
from .report import ImportReport, Outcome, ProgressHandler, RejectHandler, RowRejected

Record = dict[str, str]
Row = TypeVar("Row")
MAX_ATTEMPTS = 5


class BatchWriter(ABC, Generic[Row]):
    """Turns records into rows and writes a batch of rows in one transaction."""

    @abstractmethod
    def parse(self, line: int, record: Record, today: date) -> Row:
        """A validated row; raise RowRejected with the reason."""

    @abstractmethod
    def group_key(self, row: Row) -> object:
        """Rows with equal keys must land in the same batch (when adjacent in the file)."""

    @abstractmethod
    def write(self, session: Session, rows: list[Row]) -> dict[int, Outcome | RowRejected]:
        """Write the rows; the outcome of each, by line."""

    def committed(self) -> None:  # noqa: B027 - optional hook
        """The last batch is committed (writers keep caches of what is in the database)."""


def run_import(
    db: Database,
    records: Iterable[tuple[int, Record | str]],
    writer: BatchWriter[Row],
    *,
    batch_size: int = 1000,
    on_reject: RejectHandler | None = None,
    progress: ProgressHandler | None = None,
    today: date | None = None,
) -> ImportReport:
    """Import ``(line, record)`` pairs (a string instead of a record is a reason to reject the line).

    The calling thread reads and validates; a second thread writes the previous batch meanwhile
    (the database works while Python parses). Rejections are reported in line order.
    """
    report = ImportReport()
    started = time.perf_counter()
    today = today or date.today()
    batches: queue.Queue[_Batch[Row] | None] = queue.Queue(maxsize=2)
    failure: list[BaseException] = []

    def consume() -> None:
        try:
            while (item := batches.get()) is not None:
                _apply(db, writer, item, report, on_reject)
                if progress is not None:
                    progress(report.rows)
        except BaseException as exc:  # noqa: BLE001 - handed to the calling thread
            failure.append(exc)
            while batches.get() is not None:  # drain so the producer never blocks
                pass

    thread = threading.Thread(target=consume, name="elimu-import-writer", daemon=True)
    thread.start()
    try:
        current: _Batch[Row] = _Batch()
        for line, record in records:
            if failure:
                break
            if isinstance(record, str):
                current.rejected.append((line, record))
            else:
                try:
                    row = writer.parse(line, record, today)
                except RowRejected as exc:
                    current.rejected.append((line, str(exc)))
                else:
                    if current.size >= batch_size and (
                        not current.rows or writer.group_key(current.rows[-1][1]) != writer.group_key(row)
                    ):
                        batches.put(current)
                        current = _Batch()
                    current.rows.append((line, row))
                    continue
            if current.size >= 2 * batch_size:
                batches.put(current)
                current = _Batch()
        if current.size and not failure:
            batches.put(current)
    finally:
        batches.put(None)
        thread.join()
    if failure:
        raise failure[0]
    report.seconds = time.perf_counter() - started
    return report


@dataclass
class _Batch(Generic[Row]):
    rows: list[tuple[int, Row]] = field(default_factory=list)
    rejected: list[tuple[int, str]] = field(default_factory=list)

    @property
    def size(self) -> int:
        return len(self.rows) + len(self.rejected)


def _apply(
    db: Database, writer: BatchWriter[Row], batch: _Batch[Row], report: ImportReport, on_reject: RejectHandler | None
) -> None:
    """Write one batch and count its rows; rejections reach ``on_reject`` in line order."""
    outcomes = _write(db, writer, [row for _, row in batch.rows]) if batch.rows else {}
    results: list[tuple[int, Outcome | RowRejected]] = [(line, outcomes[line]) for line, _ in batch.rows]
    results += [(line, RowRejected(reason)) for line, reason in batch.rejected]
    for line, outcome in sorted(results, key=lambda item: item[0]):
        if isinstance(outcome, RowRejected):
            report.count(Outcome.REJECTED)
            if on_reject is not None:
                on_reject(line, str(outcome))
        else:
            report.count(outcome)


def _write(db: Database, writer: BatchWriter[Row], rows: list[Row]) -> dict[int, Outcome | RowRejected]:
    """One batch in one transaction; redone when a concurrent import won a unique-key race."""
    for attempt in range(1, MAX_ATTEMPTS + 1):
        try:
            with db.transaction() as session:
                outcomes = writer.write(session, rows)
        except IntegrityError:
            if attempt == MAX_ATTEMPTS:
                raise
            time.sleep(0.05 * attempt)
            continue
        writer.committed()
        return outcomes
    raise AssertionError("unreachable")
