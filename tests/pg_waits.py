"""Forcing an interleaving on PostgreSQL: wait until another transaction waits for a row lock."""

from __future__ import annotations

import threading
from collections.abc import Callable

from sqlalchemy import text
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


class Behind:
    """``work(session)`` in a transaction of its own on another thread, which must come to wait for
    a lock the caller's open transaction holds (checked on start); ``result`` once that one ended."""

    def __init__(self, database: Database, work: Callable[[Session], object]) -> None:
        self._outcome: list[object] = []
        self._thread = threading.Thread(target=self._run, args=(database, work))
        self._thread.start()
        wait_until_blocked(database)

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
