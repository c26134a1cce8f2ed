"""Fault suite, with PostgreSQL and a real Redis: a Redis flush mid-announcement and a worker killed mid-run.

Sends go through the real AT SDK to the fake AT server, which counts what each phone received.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import timedelta

import pytest

from registry.models import Guardian, GuardianLink, Learner, MessageKind, MessageStatus, utcnow
from registry.outbox import queue_many
from registry.services.announcements import announce
from tests.conftest import TEST_SECRET
from tests.figures import report_figure
from tests.sms.support import add_institution, at_settings, job_runtime, outbox_rows, work_queues
from workers.reconcile import reconcile
from workers.worker import build_worker

pytestmark = [pytest.mark.postgres, pytest.mark.redis]
LATER = timedelta(hours=1)


def phones(count: int) -> list[str]:
    return [f"+2547{n:08d}" for n in range(count)]


def seed_school(session, numbers: list[str]):
    institution = add_institution(session)
    learners = [Learner(upi=f"L{n:05d}", first_name="Pupil", last_name=f"N{n}", date_of_birth=utcnow().date(),
                        gender="F", grade="Grade 6", institution_id=institution.id) for n in range(len(numbers))]
    guardians = [Guardian(phone=number) for number in numbers]
    session.add_all(learners + guardians)
    session.flush()
    session.add_all([GuardianLink(learner_id=lr.id, guardian_id=gd.id) for lr, gd in zip(learners, guardians,
                                                                                      strict=True)])
    session.flush()
    return institution


def test_flush_mid_announcement_then_reconcile_sends_each_exactly_once(tmp_path, pg_database, private_redis,
                                                                       fake_at):
    # FLUSHALL on a Redis server of this test alone (other test sessions share the machine's server).
    real_redis, redis_url = private_redis
    numbers = phones(1000)
    with job_runtime(tmp_path, pg_database, real_redis, redis_url, **at_settings(fake_at)) as runtime:
        with runtime.db.transaction() as session:
            announce(session, seed_school(session, numbers), "School closes on Friday.")
        assert real_redis.llen("rq:queue:sms-bulk") == 1000
        build_worker(runtime).work(burst=True, max_jobs=3, logging_level="WARNING")  # 3 batches of 100
        sent_before = sum(len(seen.recipients) for seen in fake_at.requests)
        assert sent_before == 300
        real_redis.flushall()
        report = reconcile(runtime, now=utcnow() + LATER)
        assert report.enqueued == 1000 - sent_before
        work_queues(runtime)
        rows = outbox_rows(runtime)
    counts = {number: fake_at.sent_to(number) for number in numbers}
    report_figure("fault", "redis flushed mid-announcement: recipients", len(numbers))
    report_figure("fault", "redis flushed mid-announcement: sent before the flush", sent_before)
    report_figure("fault", "redis flushed mid-announcement: lost", sum(1 for c in counts.values() if c == 0))
    report_figure("fault", "redis flushed mid-announcement: duplicated", sum(c - 1 for c in counts.values() if c > 1))
    assert counts == dict.fromkeys(numbers, 1)
    assert {row.status for row in rows} == {MessageStatus.SUBMITTED}
    assert len({row.provider_message_id for row in rows}) == 1000


def test_jobs_popped_by_a_worker_killed_before_it_started_them_are_sent_once(tmp_path, pg_database, real_redis,
                                                                           redis_url, fake_at):
    """The flush above loses the jobs themselves. Here the jobs survive but their places do not: a
    worker takes job ids off its queue (RQ's BLPOP) and is killed before it marks them started, so
    they still say ``queued`` and are on no queue. The reconciler looks on the queues."""
    numbers = phones(100)
    with job_runtime(tmp_path, pg_database, real_redis, redis_url, **at_settings(fake_at)) as runtime:
        with runtime.db.transaction() as session:
            queue_many(session, [(n, MessageKind.NOTICE, f"Notice for {n[-3:]}", None) for n in numbers])
        popped = [real_redis.lpop("rq:queue:sms-reply") for _ in range(5)]  # the killed worker's
        assert all(real_redis.hget(b"rq:job:" + job_id, "status") == b"queued" for job_id in popped)
        build_worker(runtime).work(burst=True, logging_level="WARNING")  # the others send the rest
        assert len(fake_at.requests) == 95
        report = reconcile(runtime, now=utcnow() + LATER)
        assert (report.enqueued, report.waiting) == (5, 0)
        work_queues(runtime)
        rows = outbox_rows(runtime)
    counts = {number: fake_at.sent_to(number) for number in numbers}
    assert counts == dict.fromkeys(numbers, 1)
    assert {row.status for row in rows} == {MessageStatus.SUBMITTED}


def test_a_worker_killed_mid_run_every_message_sent_at_most_the_one_in_flight_twice(
    tmp_path, pg_database, real_redis, redis_url, fake_at
):
    numbers = phones(80)
    fake_at.delay = 0.02  # each send takes a while, so the kill lands mid-send more often than not
    with job_runtime(tmp_path, pg_database, real_redis, redis_url, **at_settings(fake_at)) as runtime:
        with runtime.db.transaction() as session:
            queue_many(session, [(n, MessageKind.NOTICE, f"Notice for {n[-3:]}", None) for n in numbers])
        env = dict(os.environ, DATABASE_URL=pg_database.url, REDIS_URL=redis_url, ELIMU_ENV="production",
                   ELIMU_SECRET_KEY=TEST_SECRET, SMS_BACKEND="africastalking", AT_USERNAME="elimu",
                   AT_API_KEY="test-api-key", AT_API_BASE_URL=fake_at.url, ELIMU_SMS_RATE="0",
                   ELIMU_INSTANCE_PATH=str(tmp_path))
        worker = subprocess.Popen(
            [sys.executable, "-c", "from gateway.cli import main; main()", "worker"],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        try:
            deadline = time.monotonic() + 60
            while len(fake_at.requests) < 30 and time.monotonic() < deadline and worker.poll() is None:
                time.sleep(0.01)
            assert len(fake_at.requests) >= 30, "the worker did not start sending"
            worker.send_signal(signal.SIGKILL)
        finally:
            worker.kill()
            worker.wait(30)
        sent_before_kill = len(fake_at.requests)
        assert sent_before_kill < len(numbers)
        fake_at.delay = 0.0
        reconcile(runtime, lease=timedelta(0))  # the killed worker's in-flight row comes back now
        work_queues(runtime)
        rows = outbox_rows(runtime)
    counts = {number: fake_at.sent_to(number) for number in numbers}
    report_figure("fault", "worker killed mid-run: messages", len(numbers))
    report_figure("fault", "worker killed mid-run: sent before the kill", sent_before_kill)
    report_figure("fault", "worker killed mid-run: lost", sum(1 for c in counts.values() if c == 0))
    report_figure("fault", "worker killed mid-run: duplicated (at most the one in flight)",
                  sum(c - 1 for c in counts.values() if c > 1))
    assert min(counts.values()) == 1  # every message sent
    assert sum(count - 1 for count in counts.values()) <= 1  # a duplicate only for the one in flight
    assert {row.status for row in rows} == {MessageStatus.SUBMITTED}
