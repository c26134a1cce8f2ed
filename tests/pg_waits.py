"""Forcing an interleaving: wait until another transaction waits for a lock (PostgreSQL: a row or
advisory lock, as pg_locks reports; SQLite: the database's write lock, as a write started)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from sqlalchemy import event, text
from sqlalchemy.orm import Session

from registry.db import Database

_WAITING = text("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                "AND wait_event_type = 'Lock'")


def wait_until_blocked(database: Database, done: threading.Event | None = None) -> None:
    """Until a connection to the test's database waits on a lock (or ``done`` is set: the other
    side finished without waiting). A state PostgreSQL reports, not a guess at a duration."""
    for _ in range(2000):
        if done is not None and done.is_set():
            return
        with database.engine.connect() as conn:
            if conn.scalar(_WAITING):
                return
        threading.Event().wait(0.005)
    raise AssertionError("no transaction waited for a lock")


_WRITES = ("INSERT", "UPDATE", "DELETE", "REPLACE")


class Behind:
    """``work(session)`` in a transaction of its own on another thread, which must come to wait for
    a lock the caller's open transaction holds (checked on start); ``result`` once that one ended.

    On SQLite, which has no row locks and reports no waits, the caller's transaction must have
    written (it holds the database's write lock, as every lock of the code there is): the other one
    waits once it starts a statement that writes, which is seen as its thread hands one to the
    driver. Its reads before that write, if any, are done, against what was committed then."""

    def __init__(self, database: Database, work: Callable[[Session], object]) -> None:
        self._outcome: list[object] = []
        self._thread = threading.Thread(target=self._run, args=(database, work))
        if not database.is_sqlite:
            self._thread.start()
            wait_until_blocked(database)
            return
        writing = threading.Event()

        def saw(_conn, _cursor, statement: str, *_args: object) -> None:
            if threading.current_thread() is self._thread and statement.lstrip().upper().startswith(_WRITES):
                writing.set()

        event.listen(database.engine, "before_cursor_execute", saw)
        try:
            self._thread.start()
            deadline = time.monotonic() + 60  # a bound on a hang only
            while not writing.wait(0.005):
                if not self._thread.is_alive():
                    assert writing.is_set(), "the other transaction ended without a write"
                    break
                assert time.monotonic() < deadline, "the other transaction started no write within 60 s"
        finally:
            event.remove(database.engine, "before_cursor_execute", saw)
        # the write lock is the caller's, so a thread that has started a write cannot have ended
        assert self._thread.is_alive(), "the other transaction's write did not wait for the caller's transaction"

    def _run(self, database: Database, work: Callable[[Session], object]) -> None:
        try:
            with database.transaction() as session:
                self._outcome.append(work(session))
        except BaseException as exc:  # noqa: BLE001 - raised again by ``result``, in the test's thread
            self._outcome.append(exc)

    def result(self) -> object:
        """What ``work`` returned (its exception raised here)."""
        self._thread.join(60)  # a bound on a hang: the lock is free now, a loaded host may be slow
        assert not self._thread.is_alive(), "the other transaction did not end within 60 s of the lock's release"
        (outcome,) = self._outcome
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome
