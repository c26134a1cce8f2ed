"""Fixtures of the SMS tests (helpers live in ``tests.sms.support``)."""

from __future__ import annotations

import pytest

from tests.sms.support import fake_at_server, job_runtime
from workers import queues


@pytest.fixture
def fake_at():
    with fake_at_server() as fake:
        yield fake


@pytest.fixture
def quick_retries(monkeypatch):
    """Retries without waiting: two retries (three attempts) at interval 0 on every queue."""
    for name in list(queues.RETRY_INTERVALS):
        monkeypatch.setitem(queues.RETRY_INTERVALS, name, (0, 0))


@pytest.fixture
def sms_runtime(tmp_path, sqlite_database, fake_redis):
    """SQLite + fakeredis + the outbox backend, installed for jobs."""
    with job_runtime(tmp_path, sqlite_database, fake_redis) as runtime:
        yield runtime


@pytest.fixture
def at_runtime(tmp_path, sqlite_database, fake_redis, fake_at):
    """SQLite + fakeredis + the real AT SDK pointed at the fake AT server."""
    from tests.sms.support import at_settings

    with job_runtime(tmp_path, sqlite_database, fake_redis, **at_settings(fake_at)) as runtime:
        yield runtime
