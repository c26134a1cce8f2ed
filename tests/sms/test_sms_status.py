"""``elimu sms status``: where the pipeline stands, from the outbox, Redis and the announcements."""

from __future__ import annotations

import json
from datetime import timedelta

from click.testing import CliRunner

from gateway.cli import Context, cli
from registry.models import Announcement, InboundMessage, MessageKind, MessageStatus, utcnow
from registry.outbox import queue_sms
from registry.services.sms_status import pipeline_status
from workers.context import queues_of
from workers.queues import SendJob

P1, P2 = "+254711000001", "+254711000002"


def make(session, kind, status, *, age=timedelta(0), announcement_id=None):
    row = queue_sms(session, P1, kind, "hello", announcement_id=announcement_id)
    session.flush()
    row.status, row.created_at = status, utcnow() - age
    return row


def test_counts_by_kind_and_status_and_what_still_waits(sqlite_database):
    with sqlite_database.transaction() as session:
        announcement = Announcement(institution_code="WE4T", grade="Form 4", body="Fees", recipients=3)
        session.add(announcement)
        session.flush()
        for status in (MessageStatus.QUEUED, MessageStatus.DELIVERED, MessageStatus.REJECTED):
            make(session, MessageKind.ANNOUNCEMENT, status, announcement_id=announcement.id)
        make(session, MessageKind.OTP, MessageStatus.DELIVERED)
        make(session, MessageKind.REPLY, MessageStatus.QUEUED, age=timedelta(hours=30))  # before the window
        session.add(InboundMessage(provider_id="in-1", sender=P2, text="KCSE 1 x"))
        session.add(InboundMessage(provider_id="in-2", sender=P2, text="HELP", handled_at=utcnow()))
    with sqlite_database.session() as session:
        status = pipeline_status(session, utcnow() - timedelta(hours=24))
    assert status.by_kind == {"announcement": {"queued": 1, "delivered": 1, "rejected": 1}, "otp": {"delivered": 1}}
    assert status.queued == 2  # the old reply waits too, and the oldest waiting is that one
    assert utcnow() - status.oldest_queued_at.replace(tzinfo=utcnow().tzinfo) > timedelta(hours=29)
    assert status.unanswered_inbound == 1
    [progress] = status.announcements
    assert (progress.institution_code, progress.grade, progress.recipients) == ("WE4T", "Form 4", 3)
    assert progress.by_status == {"queued": 1, "delivered": 1, "rejected": 1}


def run(runtime, *args):
    context = Context()
    context._runtime = runtime
    return CliRunner().invoke(cli, ["sms", "status", *args], obj=context)


def test_the_table_and_json_on_embedded_redis(sms_runtime):
    with sms_runtime.db.transaction() as session:
        make(session, MessageKind.NOTICE, MessageStatus.QUEUED, age=timedelta(minutes=7))
    table = run(sms_runtime)
    assert table.exit_code == 0, table.output
    assert "notice" in table.output and "the oldest waiting 7 min" in table.output
    assert "embedded Redis" in table.output
    record = json.loads(run(sms_runtime, "--json").output)
    assert record["messages"] == {"notice": {"queued": 1}} and record["queued"] == 1
    assert record["queues"] is None and record["announcements"] == []


def test_the_window_is_hours_but_what_waits_is_counted_however_old(sms_runtime):
    with sms_runtime.db.transaction() as session:
        make(session, MessageKind.NOTICE, MessageStatus.QUEUED, age=timedelta(hours=2))
    output = run(sms_runtime, "--hours", "1").output
    assert "no messages made in the last 1 h" in output
    assert "queued now: 1 (the oldest waiting 2 h 0 min)" in output


def test_the_queues_in_redis(integration_runtime):
    with integration_runtime.db.transaction() as session:
        row = make(session, MessageKind.NOTICE, MessageStatus.QUEUED)  # its job is enqueued on commit
    queues_of(integration_runtime).enqueue_sends([SendJob(row.id, "sms-reply", retry=1)], delay=60)
    result = run(integration_runtime, "--json")
    assert result.exit_code == 0, result.output
    counts = json.loads(result.output)["queues"]
    assert counts["sms-reply"] == {"waiting": 1, "scheduled": 1, "failed": 0}
    assert counts["sms-otp"] == {"waiting": 0, "scheduled": 0, "failed": 0}
    assert "queues (Redis)" in run(integration_runtime).output


def test_with_redis_down_the_database_s_part_is_still_shown(tmp_path, sqlite_database):
    """The drill's Redis outage: ``elimu sms status`` printed only ``Error: redis: …``, hiding the
    outbox the database still had. Now the messages are shown, the queues said to be unavailable,
    and the exit code is still 3."""
    from tests.conftest import unreachable_redis
    from tests.sms.support import job_runtime

    broken = unreachable_redis()
    with job_runtime(tmp_path, sqlite_database, broken, "redis://127.0.0.1:1/0") as runtime:
        with runtime.db.transaction() as session:
            make(session, MessageKind.NOTICE, MessageStatus.DELIVERED)
        table, as_json = run(runtime), run(runtime, "--json")
    assert table.exit_code == 3 and as_json.exit_code == 3
    assert "notice" in table.output and "queues: Redis down (ConnectionError)" in table.output
    assert "Error: redis: down (ConnectionError)" in table.output
    record = json.loads(as_json.output.splitlines()[0])
    assert record["messages"] == {"notice": {"delivered": 1}} and record["redis"] == "down (ConnectionError)"
