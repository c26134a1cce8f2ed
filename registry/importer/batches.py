"""The import loop shared by learners and results: parse, batch, write with retry, count, report."""

from __future__ import annotations

import queue
import signal
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date
from typing import Any, Generic, TypeVar

from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session

from ..db import Database
from .report import ImportReport, Outcome, ProgressHandler, RejectHandler, RowRejected, WarnHandler

Record = dict[str, str]
Row = TypeVar("Row")
MAX_ATTEMPTS = 8
RETRY_SQLSTATES = ("40P01", "40001")  # deadlock detected, serialization failure


class BatchWriter(ABC, Generic[Row]):
    """Turns records into rows and writes a batch of rows in one transaction.

    Writers may cache ids of what is in the database (institutions, exam series). Entries a batch
    creates are staged per thread and become visible to other batches once it commits.
    """

    def __init__(self) -> None:
        self._local = threading.local()
        self.pending_warnings: list[tuple[int, str]] = []

    def warn(self, line: int, text: str) -> None:
        """Note something about an accepted row (from ``parse``, on the reading thread)."""
        self.pending_warnings.append((line, text))

    def take_warnings(self) -> list[tuple[int, str]]:
        """The warnings noted since the last call."""
        taken, self.pending_warnings = self.pending_warnings, []
        return taken

    def note(self, line: int, text: str) -> None:
        """Note something about a row the batch writes (from ``write``, on a writer thread); kept
        only when the batch commits."""
        self._local.notes.append((line, text))

    def begin_batch(self) -> None:
        """Forget the notes of an attempt at writing the batch that did not commit."""
        self._local.notes = []

    def take_notes(self) -> list[tuple[int, str]]:
        """The notes of the batch just committed."""
        notes: list[tuple[int, str]] = self._local.notes
        self._local.notes = []
        return notes

    def stage(self, entries: dict[Any, int]) -> None:
        """Cache entries this thread's batch created (visible after its commit)."""
        self._local.staged = entries

    def pop_staged(self) -> dict[Any, int]:
        staged: dict[Any, int] = getattr(self._local, "staged", {})
        self._local.staged = {}
        return staged

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

    def close(self) -> None:  # noqa: B027 - optional hook
        """The import has ended: free what the writer holds (``run_import`` calls it)."""


def run_import(
    db: Database,
    records: Iterable[tuple[int, Record | str]],
    writer: BatchWriter[Row],
    *,
    batch_size: int = 1000,
    on_reject: RejectHandler | None = None,
    progress: ProgressHandler | None = None,
    today: date | None = None,
    writers: int | None = None,
    on_warning: WarnHandler | None = None,
    report: ImportReport | None = None,
) -> ImportReport:
    """Import ``(line, record)`` pairs (a string instead of a record is a reason to reject the line).

    The calling thread reads and validates; ``writers`` threads (two on PostgreSQL, one on SQLite,
    which has a single writer anyway) write batches meanwhile, each on its own connection, so the
    database works while Python parses. Outcomes (and the writer's warnings) are reported in line
    order whatever order the batches commit in.

    When the import stops early (a database failure, an interrupt) the error is raised as it came,
    once ``report`` (pass one in to keep it) counts every batch that was written and its
    ``stopped_at`` names the first line not known to be written.

    Ctrl-C (SIGINT, on the main thread): the first stops the reading and lets the batches already
    handed to the writers be written; one more while they are stops that wait too (the batches
    not started are dropped, those being written are left to commit or not, ``report.unsure``
    names their lines) and raises KeyboardInterrupt once ``report`` is complete. A Ctrl-C that
    comes once every line is read only ends the import early if followed by another.
    """
    report = report if report is not None else ImportReport()
    started = time.perf_counter()
    today = today or date.today()
    count = writers or (1 if db.is_sqlite else 2)
    batches: queue.Queue[tuple[int, _Batch[Row]] | None] = queue.Queue(maxsize=2 * count)
    failure: list[BaseException] = []
    finished: dict[int, tuple[_Batch[Row], dict[int, Outcome | RowRejected]]] = {}
    writing: dict[int, _Batch[Row]] = {}  # seq -> a batch a writer has taken and not reported
    reporting = threading.Lock()
    next_seq = [0]
    closed = [False]  # the report is final: a batch committing after it is not counted
    interrupts = _Interrupts()

    def report_ready(seq: int, batch: _Batch[Row], outcomes: dict[int, Outcome | RowRejected]) -> None:
        with reporting:
            writing.pop(seq, None)
            if closed[0]:
                return
            finished[seq] = (batch, outcomes)
            while next_seq[0] in finished:
                batch, outcomes = finished.pop(next_seq[0])
                _count(batch, outcomes, report, on_reject, on_warning)
                next_seq[0] += 1
                if progress is not None:
                    progress(report.rows)

    def consume() -> None:
        try:
            while (item := batches.get()) is not None:
                seq, batch = item
                if interrupts.abandon.is_set():
                    continue  # stopped again while draining: nothing more is written
                with reporting:
                    if closed[0]:
                        continue  # the counts are taken: a batch started now would be in none of them
                    writing[seq] = batch
                try:
                    outcomes = _write(db, writer, [row for _, row in batch.rows]) if batch.rows else {}
                except BaseException:
                    with reporting:
                        writing.pop(seq, None)  # rolled back: not stored
                    raise
                batch.warnings += writer.take_notes() if batch.rows else []
                report_ready(seq, batch, outcomes)
        except BaseException as exc:  # noqa: BLE001 - handed to the calling thread
            failure.append(exc)
            while batches.get() is not None:  # drain so the producer never blocks
                pass

    threads = [threading.Thread(target=consume, name=f"elimu-import-writer-{n}", daemon=True) for n in range(count)]
    for thread in threads:
        thread.start()
    seq = 0
    current: _Batch[Row] = _Batch()
    ends: dict[int, int] = {}  # seq -> the last line of each batch handed to the writers
    read_all = False
    with _sigint(interrupts):
        try:
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
                        if writer.pending_warnings:
                            current.warnings += writer.take_warnings()
                        if current.size >= batch_size and (
                            not current.rows or writer.group_key(current.rows[-1][1]) != writer.group_key(row)
                        ):
                            ends[seq] = current.last
                            batches.put((seq, current))
                            seq, current = seq + 1, _Batch()
                        current.rows.append((line, row))
                        continue
                if current.size >= 2 * batch_size:
                    ends[seq] = current.last
                    batches.put((seq, current))
                    seq, current = seq + 1, _Batch()
            if current.size and not failure:
                ends[seq] = current.last
                batches.put((seq, current))
            read_all = True
            interrupts.reading = False
        except KeyboardInterrupt:
            interrupts.stopped()  # a Ctrl-C however it came: the next one stops the drain
            if not read_all:
                raise
            # every line was handed to the writers: the import ends as if it came during the drain
        finally:
            interrupts.reading = False  # from here a Ctrl-C is noted, never raised midway
            _drain(batches, threads, interrupts.abandon)
            with reporting:
                closed[0] = True
                report.seconds = time.perf_counter() - started
                if failure or not read_all or interrupts.abandon.is_set():
                    report.stopped_at = _stopped(finished, next_seq[0], ends, report, on_reject, on_warning)
                    report.unsure = sorted((batch.first, batch.last) for batch in writing.values())
            writer.close()
    if failure:
        raise failure[0]
    if interrupts.abandon.is_set():
        raise KeyboardInterrupt
    return report


class _Interrupts:
    """What Ctrl-C does during an import: raised while the file is read (``reading``), afterwards
    only counted; a second sets ``abandon``."""

    def __init__(self) -> None:
        self.reading = True
        self.count = 0
        self.abandon = threading.Event()

    def __call__(self, _signum: int, _frame: object) -> None:
        self.count += 1
        if self.reading:
            self.reading = False
            raise KeyboardInterrupt
        if self.count >= 2:
            self.abandon.set()

    def stopped(self) -> None:
        """The reading was interrupted (by this handler or a KeyboardInterrupt raised otherwise)."""
        self.reading = False
        self.count = max(self.count, 1)


@contextmanager
def _sigint(handler: _Interrupts) -> Iterator[None]:
    """``handler`` takes SIGINT inside, when Python's own would (main thread, not ignored)."""
    ours = threading.current_thread() is threading.main_thread() and \
        signal.getsignal(signal.SIGINT) is signal.default_int_handler
    if ours:
        signal.signal(signal.SIGINT, handler)
    try:
        yield
    finally:
        if ours:
            signal.signal(signal.SIGINT, signal.default_int_handler)


def _drain(batches: queue.Queue, threads: list[threading.Thread], abandon: threading.Event) -> None:
    """Tell each writer to end after the batches queued, and wait for them, until ``abandon`` is
    set: then the batches not started are dropped, and the writers end after the one they write."""
    marks = len(threads)
    while marks and not abandon.is_set():
        try:
            batches.put(None, timeout=0.1)  # wakes as soon as a writer takes a batch
            marks -= 1
        except queue.Full:
            pass
    for thread in threads:
        while thread.is_alive() and not abandon.is_set():
            thread.join(0.1)  # returns as soon as it ends; the timeout only lets ``abandon`` be seen
    if abandon.is_set():
        try:
            while True:
                batches.get_nowait()
        except queue.Empty:
            pass
        for _ in threads:
            try:
                batches.put_nowait(None)
            except queue.Full:
                break


def _stopped(
    finished: dict[int, tuple[_Batch[Row], dict[int, Outcome | RowRejected]]],
    next_seq: int,
    ends: dict[int, int],
    report: ImportReport,
    on_reject: RejectHandler | None,
    on_warning: WarnHandler | None,
) -> int:
    """An import stopped early: count the batches written after one that was not (two writers
    commit out of order); the first line of the first batch not written."""
    for seq in sorted(finished):
        _count(*finished.pop(seq), report, on_reject, on_warning)
    return ends[next_seq - 1] + 1 if next_seq else 2


@dataclass
class _Batch(Generic[Row]):
    rows: list[tuple[int, Row]] = field(default_factory=list)
    rejected: list[tuple[int, str]] = field(default_factory=list)
    warnings: list[tuple[int, str]] = field(default_factory=list)

    @property
    def size(self) -> int:
        return len(self.rows) + len(self.rejected)

    @property
    def first(self) -> int:
        """Its first line."""
        return min(lines[0][0] for lines in (self.rows, self.rejected) if lines)

    @property
    def last(self) -> int:
        """Its last line (rows and rejected lines are each in line order)."""
        return max(lines[-1][0] for lines in (self.rows, self.rejected) if lines)


class _Warning(str):
    """A warning's text among a batch's outcomes."""


def _count(
    batch: _Batch[Row],
    outcomes: dict[int, Outcome | RowRejected],
    report: ImportReport,
    on_reject: RejectHandler | None,
    on_warning: WarnHandler | None,
) -> None:
    """Count one written batch; its rejections and warnings reach their handlers in line order (a
    line's warning before its rejection)."""
    results: list[tuple[int, Outcome | RowRejected | _Warning]]
    results = [(line, _Warning(text)) for line, text in batch.warnings]
    results += [(line, outcomes[line]) for line, _ in batch.rows]
    results += [(line, RowRejected(reason)) for line, reason in batch.rejected]
    for line, outcome in sorted(results, key=lambda item: item[0]):
        if isinstance(outcome, _Warning):
            report.warnings += 1
            if on_warning is not None:
                on_warning(line, outcome)
        elif isinstance(outcome, RowRejected):
            report.count(Outcome.REJECTED)
            if on_reject is not None:
                on_reject(line, str(outcome))
        else:
            report.count(outcome)


def _write(db: Database, writer: BatchWriter[Row], rows: list[Row]) -> dict[int, Outcome | RowRejected]:
    """One batch in one transaction; redone when a concurrent writer won a unique-key race (or the
    two deadlocked: PostgreSQL then aborts one of them)."""
    for attempt in range(1, MAX_ATTEMPTS + 1):
        writer.begin_batch()
        try:
            with db.transaction() as session:
                outcomes = writer.write(session, rows)
        except (IntegrityError, OperationalError) as exc:
            retry = isinstance(exc, IntegrityError) or getattr(exc.orig, "sqlstate", None) in RETRY_SQLSTATES
            if not retry or attempt == MAX_ATTEMPTS:
                raise
            time.sleep(0.05 * attempt)
            continue
        writer.committed()
        return outcomes
    raise AssertionError("unreachable")
