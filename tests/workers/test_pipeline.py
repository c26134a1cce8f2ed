"""The outbound pipeline on fakeredis: dispatch, priorities, idempotent jobs, retries, the reconciler."""

from __future__ import annotations

import logging
import time
from datetime import timedelta

import fakeredis
import pytest
from rq import Queue
from rq.job import Job
from rq.registry import ScheduledJobRegistry

from registry.models import MessageKind, MessageStatus, OutboundMessage, utcnow
from registry.outbox import queue_many, queue_sms
from tests.conftest import unreachable_redis
from tests.sms.support import Scripted, job_runtime, outbox_rows, work_queues
from workers import jobs
from workers.backends.outbox import INBOX_KEY, read_inbox
from workers.embedded import EmbeddedWorker
from workers.inbound import receive
from workers.reconcile import reconcile

PHONE = "+254712345678"
LATER = timedelta(hours=1)


def queued(runtime, *phones, kind=MessageKind.NOTICE, body="Notice"):
    with runtime.db.transaction() as session:
        return [queue_sms(session, phone, kind, body).id for phone in phones]


def queue_length(runtime, name):
    return Queue(name, connection=runtime.redis).count


# --- dispatch -----------------------------------------------------------------------------------


def test_each_message_gets_one_job_on_its_prioritys_queue(sms_runtime):
    with sms_runtime.db.transaction() as session:
        otp = queue_sms(session, PHONE, MessageKind.OTP, "code ******", secret="code 482913")
        reply = queue_sms(session, PHONE, MessageKind.REPLY, "hello")
        [bulk_id] = queue_many(session, [(PHONE, MessageKind.ANNOUNCEMENT, "notice", None)], announcement_id=3)
        assert queue_length(sms_runtime, "sms-otp") == 0  # nothing before the commit
    assert Queue("sms-otp", connection=sms_runtime.redis).job_ids == [f"sms-{otp.id}"]
    assert Queue("sms-reply", connection=sms_runtime.redis).job_ids == [f"sms-{reply.id}"]
    assert Queue("sms-bulk", connection=sms_runtime.redis).job_ids == [f"sms-{bulk_id}"]
    job = Job.fetch(f"sms-{otp.id}", connection=sms_runtime.redis)
    assert job.args == (otp.id, "code 482913")  # the clear text rides only in the job
    assert "482913" not in job.description
    assert "482913" not in outbox_rows(sms_runtime)[0].body


def test_a_rolled_back_transaction_enqueues_nothing(sms_runtime):
    with pytest.raises(RuntimeError), sms_runtime.db.transaction() as session:
        queue_sms(session, PHONE, MessageKind.NOTICE, "never")
        raise RuntimeError
    assert queue_length(sms_runtime, "sms-reply") == 0


def test_redis_down_at_dispatch_keeps_the_row_for_the_reconciler(tmp_path, sqlite_database, caplog):
    broken = unreachable_redis()
    with job_runtime(tmp_path, sqlite_database, broken) as runtime, caplog.at_level(logging.WARNING):
        queued(runtime, PHONE)
        assert [r.status for r in outbox_rows(runtime)] == [MessageStatus.QUEUED]
    assert "the reconciler will" in caplog.text


# --- jobs ---------------------------------------------------------------------------------------


def test_an_accepted_message_is_never_submitted_again(at_runtime, fake_at):
    [message_id] = queued(at_runtime, PHONE)
    jobs.send_message(message_id)
    jobs.send_message(message_id)  # a duplicate job, e.g. re-enqueued by hand
    assert len(fake_at.requests) == 1
    [row] = outbox_rows(at_runtime)
    assert (row.status, row.attempts) == (MessageStatus.SUBMITTED, 1)


def test_otps_go_before_a_bulk_backlog(at_runtime, fake_at):
    with at_runtime.db.transaction() as session:
        queue_many(session, [(f"+2547{n:08d}", MessageKind.ANNOUNCEMENT, "Bulk", None) for n in range(300)],
                   announcement_id=1)
        queue_sms(session, "+254799999999", MessageKind.REPLY, "A reply")
    with at_runtime.db.transaction() as session:
        queue_sms(session, PHONE, MessageKind.OTP, "code ******", secret="code 123456")
    work_queues(at_runtime)
    assert fake_at.requests[0].recipients == [PHONE]
    assert fake_at.requests[1].recipients == ["+254799999999"]
    assert sum(len(seen.recipients) for seen in fake_at.requests) == 302


def test_a_no_bulk_worker_sends_codes_and_replies_and_leaves_announcements(at_runtime, fake_at):
    from workers.worker import run_worker

    with at_runtime.db.transaction() as session:
        queue_many(session, [(f"+2547{n:08d}", MessageKind.ANNOUNCEMENT, "Bulk", None) for n in range(3)],
                   announcement_id=1)
        queue_sms(session, "+254799999999", MessageKind.REPLY, "A reply")
        queue_sms(session, PHONE, MessageKind.OTP, "code ******", secret="code 123456")
    run_worker(at_runtime, burst=True, logging_level="WARNING", bulk=False)
    assert [seen.recipients for seen in fake_at.requests] == [[PHONE], ["+254799999999"]]
    assert queue_length(at_runtime, "sms-bulk") == 3
    work_queues(at_runtime)  # an ordinary worker takes them
    assert sum(len(seen.recipients) for seen in fake_at.requests) == 5


def test_a_retry_waits_its_interval_in_rqs_scheduled_registry(at_runtime, fake_at):
    fake_at.then(Scripted(codes={PHONE: 500}))
    [message_id] = queued(at_runtime, PHONE)
    work_queues(at_runtime)
    [row] = outbox_rows(at_runtime)
    assert (row.status, row.attempts, row.failure_reason) == (MessageStatus.QUEUED, 1, "AT 500 InternalServerError")
    assert row.next_attempt_at > row.submitted_at
    assert ScheduledJobRegistry("sms-reply", connection=at_runtime.redis).get_job_ids() == [f"sms-{message_id}"]


def test_a_recipient_retried_inside_a_batch_gets_a_job_of_its_own(at_runtime, fake_at):
    phones = [f"+2547{n:08d}" for n in range(3)]
    fake_at.then(Scripted(codes={phones[2]: 500}))
    with at_runtime.db.transaction() as session:
        rows = queue_many(session, [(p, MessageKind.ANNOUNCEMENT, "Bulk", None) for p in phones], announcement_id=1)
    work_queues(at_runtime)
    assert [r.status for r in outbox_rows(at_runtime)] == [
        MessageStatus.SUBMITTED, MessageStatus.SUBMITTED, MessageStatus.QUEUED]
    assert ScheduledJobRegistry("sms-bulk", connection=at_runtime.redis).get_job_ids() == [f"sms-{rows[2]}-retry1"]


# --- the outbox backend -------------------------------------------------------------------------


def test_the_outbox_keeps_a_dev_inbox_with_the_clear_code(sms_runtime):
    with sms_runtime.db.transaction() as session:
        queue_sms(session, PHONE, MessageKind.OTP, "code ******", secret="code 123456")
        queue_sms(session, PHONE, MessageKind.NOTICE, "hello")
    work_queues(sms_runtime)
    assert [(m["kind"], m["text"]) for m in read_inbox(sms_runtime.redis, PHONE)] == [
        ("notice", "hello"), ("otp", "code 123456")]
    assert 0 < sms_runtime.redis.ttl(INBOX_KEY.format(phone=PHONE)) <= 24 * 3600
    assert {r.status for r in outbox_rows(sms_runtime)} == {MessageStatus.DELIVERED}


def test_outside_development_the_outbox_keeps_no_inbox(tmp_path, sqlite_database, fake_redis):
    with job_runtime(tmp_path, sqlite_database, fake_redis, env="production") as runtime:
        with runtime.db.transaction() as session:
            queue_sms(session, PHONE, MessageKind.OTP, "code ******", secret="code 123456")
        work_queues(runtime)
        assert read_inbox(runtime.redis, PHONE) == []
        assert [r.status for r in outbox_rows(runtime)] == [MessageStatus.DELIVERED]


# --- the reconciler -----------------------------------------------------------------------------


def test_after_a_redis_flush_queued_messages_are_enqueued_again(sms_runtime):
    queued(sms_runtime, *[f"+2547110000{n:02d}" for n in range(5)])
    sms_runtime.redis.flushdb()
    assert reconcile(sms_runtime, now=utcnow()).enqueued == 0  # not yet past the grace period
    report = reconcile(sms_runtime, now=utcnow() + LATER)
    assert (report.enqueued, report.waiting) == (5, 0)
    work_queues(sms_runtime)
    assert {r.status for r in outbox_rows(sms_runtime)} == {MessageStatus.DELIVERED}


def test_jobs_still_waiting_are_not_doubled(sms_runtime):
    queued(sms_runtime, PHONE, PHONE, PHONE)
    report = reconcile(sms_runtime, now=utcnow() + LATER)
    assert (report.enqueued, report.waiting) == (0, 3)
    assert queue_length(sms_runtime, "sms-reply") == 3


def test_a_job_lost_between_its_dequeue_and_its_start_is_enqueued_again(at_runtime, fake_at):
    """A worker killed after RQ popped a job off its queue and before it started it leaves the job
    saying ``queued``, on no queue: the row would wait for good. The reconciler looks for the job
    on its queue, not at what the job says."""
    [message_id] = queued(at_runtime, PHONE)
    assert at_runtime.redis.lpop("rq:queue:sms-reply") == f"sms-{message_id}".encode()  # the worker dies here
    report = reconcile(at_runtime, now=utcnow() + LATER)
    assert (report.enqueued, report.waiting) == (1, 0)
    work_queues(at_runtime)
    [row] = outbox_rows(at_runtime)
    assert row.status is MessageStatus.SUBMITTED and row.accepted_at is not None and len(fake_at.requests) == 1


def test_a_retry_lost_between_its_schedule_and_its_queue_is_enqueued_again(at_runtime, fake_at):
    """``promote_due`` takes a due retry out of RQ's scheduled registry, then enqueues it: killed in
    between, the job says ``scheduled`` and is in no registry. Enqueued again, sent once."""
    fake_at.then(Scripted(codes={PHONE: 500}))
    [message_id] = queued(at_runtime, PHONE)
    work_queues(at_runtime)
    with at_runtime.db.transaction() as session:  # its retry long due
        session.get(OutboundMessage, message_id).next_attempt_at = utcnow() - timedelta(minutes=5)
    assert reconcile(at_runtime).waiting == 1  # a retry still in the scheduled registry is left alone
    ScheduledJobRegistry("sms-reply", connection=at_runtime.redis).remove(f"sms-{message_id}")  # the promoter dies
    report = reconcile(at_runtime)
    assert (report.enqueued, report.waiting) == (1, 0)
    work_queues(at_runtime)
    [row] = outbox_rows(at_runtime)
    assert (row.status, row.attempts) == (MessageStatus.SUBMITTED, 2) and len(fake_at.requests) == 2


def test_an_otp_job_lost_after_its_dequeue_is_enqueued_again_with_its_code(at_runtime, fake_at):
    with at_runtime.db.transaction() as session:
        otp = queue_sms(session, PHONE, MessageKind.OTP, "code ******", secret="code 123456")
    at_runtime.redis.lpop("rq:queue:sms-otp")
    report = reconcile(at_runtime, now=utcnow() + timedelta(minutes=4))  # past the grace, the code still valid
    assert (report.enqueued, report.expired) == (1, 0)
    work_queues(at_runtime)
    assert [seen.form["message"] for seen in fake_at.requests] == ["code 123456"]
    assert outbox_rows(at_runtime)[0].id == otp.id


def test_an_otp_whose_code_was_lost_expires_and_is_never_sent_redacted(at_runtime, fake_at):
    with at_runtime.db.transaction() as session:
        queue_sms(session, PHONE, MessageKind.OTP, "code ******", secret="code 123456")
    at_runtime.redis.flushdb()
    report = reconcile(at_runtime, now=utcnow() + LATER)
    assert (report.expired, report.enqueued) == (1, 0)
    work_queues(at_runtime)
    [row] = outbox_rows(at_runtime)
    assert row.status is MessageStatus.EXPIRED and fake_at.requests == []


def test_an_otp_job_without_its_clear_text_expires_the_row(at_runtime, fake_at):
    with at_runtime.db.transaction() as session:
        otp = queue_sms(session, PHONE, MessageKind.OTP, "code ******", secret="code 123456")
    jobs.send_message(otp.id)  # as if enqueued again without the code
    assert outbox_rows(at_runtime)[0].status is MessageStatus.EXPIRED and fake_at.requests == []


def test_an_otp_job_that_survived_is_re_enqueued_with_its_code(at_runtime, fake_at):
    with at_runtime.db.transaction() as session:
        otp = queue_sms(session, PHONE, MessageKind.OTP, "code ******", secret="code 123456")
    redis = at_runtime.redis
    redis.delete("rq:queue:sms-otp")  # the job hash survives, its place in the queue does not
    redis.hset(Job.key_for(f"sms-{otp.id}"), "status", "started")
    report = reconcile(at_runtime, now=utcnow() + LATER)
    assert (report.enqueued, report.expired) == (1, 0)
    work_queues(at_runtime)
    assert [seen.form["message"] for seen in fake_at.requests] == ["code 123456"]


def test_an_otp_older_than_its_code_is_expired_not_sent(at_runtime, fake_at):
    """A worker lost mid-send holds an OTP for the 5-minute lease, as long as the code lives: the
    reclaimed message would bring the parent a dead code. It expires instead; a fresh one goes."""
    with at_runtime.db.transaction() as session:
        stale = queue_sms(session, PHONE, MessageKind.OTP, "code ******", secret="code 111111")
        stale.status, stale.attempts = MessageStatus.SUBMITTED, 1  # a worker claimed it, then died
        stale.created_at = stale.submitted_at = utcnow() - timedelta(minutes=6)
        fresh = queue_sms(session, PHONE, MessageKind.OTP, "code ******", secret="code 222222")
    at_runtime.redis.hset(Job.key_for(f"sms-{stale.id}"), "status", "started")
    report = reconcile(at_runtime)
    assert report.reclaimed == 1
    work_queues(at_runtime)
    rows = {row.id: row for row in outbox_rows(at_runtime)}
    assert [seen.form["message"] for seen in fake_at.requests] == ["code 222222"]
    assert rows[stale.id].status is MessageStatus.EXPIRED and rows[stale.id].failure_reason.startswith("code expired")
    assert rows[fresh.id].status is MessageStatus.SUBMITTED and rows[fresh.id].accepted_at is not None


def test_a_send_cut_off_mid_way_is_sent_again(at_runtime, fake_at):
    [message_id] = queued(at_runtime, PHONE)
    at_runtime.redis.flushdb()
    with at_runtime.db.transaction() as session:  # a worker claimed it, then died
        row = session.get(OutboundMessage, message_id)
        row.status, row.attempts, row.submitted_at = MessageStatus.SUBMITTED, 1, utcnow()
    assert reconcile(at_runtime, now=utcnow() + timedelta(minutes=1)).reclaimed == 0  # within the lease
    report = reconcile(at_runtime, now=utcnow() + LATER)
    assert (report.reclaimed, report.enqueued) == (1, 1)
    work_queues(at_runtime)
    [row] = outbox_rows(at_runtime)
    assert (row.status, row.attempts) == (MessageStatus.SUBMITTED, 2) and len(fake_at.requests) == 1


def test_an_accepted_message_is_never_reclaimed(at_runtime, fake_at):
    queued(at_runtime, PHONE)
    work_queues(at_runtime)
    assert reconcile(at_runtime, now=utcnow() + LATER).reclaimed == 0
    work_queues(at_runtime)
    assert len(fake_at.requests) == 1


def test_inbound_messages_lost_from_redis_are_answered_after_reconciliation(sms_runtime):
    receive(sms_runtime, provider_id="a", sender=PHONE, text="HELP")
    receive(sms_runtime, provider_id="b", sender=PHONE, text="STOP")
    sms_runtime.redis.flushdb()
    work_queues(sms_runtime)
    assert outbox_rows(sms_runtime) == []
    assert reconcile(sms_runtime, now=utcnow() + LATER).inbound == 2
    work_queues(sms_runtime)
    assert len(outbox_rows(sms_runtime)) == 2


def test_inbound_messages_waiting_for_a_drain_are_not_pushed_again(sms_runtime):
    """A backlog older than the grace period is still on the list: the reconciler leaves it there
    (once a pass it pushed every id again), hands over only an id the list lost, and starts a drain
    when none is running (one killed mid-run)."""
    from workers.inbound import PENDING_KEY, SLOT_KEY, SLOTS
    from workers.queues import INBOUND_QUEUE

    redis = sms_runtime.redis

    def drain_killed():
        redis.delete(Queue(INBOUND_QUEUE, connection=redis).key, *(SLOT_KEY.format(slot=s) for s in range(SLOTS)))

    ids = [receive(sms_runtime, provider_id=f"in-{n}", sender=PHONE, text="HELP") for n in range(3)]
    assert reconcile(sms_runtime, now=utcnow() + LATER).inbound == 0
    assert [int(x) for x in redis.lrange(PENDING_KEY, 0, -1)] == ids
    drain_killed()
    assert reconcile(sms_runtime, now=utcnow() + LATER).inbound == 0
    assert (redis.llen(PENDING_KEY), queue_length(sms_runtime, INBOUND_QUEUE)) == (3, 1)
    drain_killed()
    redis.lrem(PENDING_KEY, 1, ids[1])  # it had taken this one
    assert reconcile(sms_runtime, now=utcnow() + LATER).inbound == 1
    assert sorted(int(x) for x in redis.lrange(PENDING_KEY, 0, -1)) == ids
    assert queue_length(sms_runtime, INBOUND_QUEUE) == 1
    work_queues(sms_runtime)
    assert [row.recipient for row in outbox_rows(sms_runtime)] == [PHONE] * 3


def test_one_reconciler_at_a_time(sms_runtime):
    sms_runtime.redis.set("elimu:sms:reconcile-lock", "1")
    assert reconcile(sms_runtime).locked


# --- the embedded worker ------------------------------------------------------------------------


IN_FLIGHT = (MessageStatus.QUEUED, MessageStatus.SUBMITTED)  # claimed for sending, not yet recorded


def test_the_embedded_worker_sends_in_process(tmp_path, sqlite_database):
    """The row is waited for until its send is recorded: a claimed row says ``submitted`` while the
    outbox sends it (longer on a loaded machine), which is not yet the outcome."""
    redis = fakeredis.FakeRedis(server=fakeredis.FakeServer())
    with job_runtime(tmp_path, sqlite_database, redis) as runtime:
        worker = EmbeddedWorker(runtime).start()
        try:
            queued(runtime, PHONE)
            deadline = time.monotonic() + 60  # bounds a hang only
            while outbox_rows(runtime)[0].status in IN_FLIGHT and time.monotonic() < deadline:
                time.sleep(0.05)
            assert outbox_rows(runtime)[0].status is MessageStatus.DELIVERED
        finally:
            worker.stop(timeout=60)
            worker.keeper.join(60)
        assert not worker.thread.is_alive() and not worker.keeper.is_alive()


def test_a_failing_otp_job_never_logs_the_code(at_runtime, fake_at, caplog):
    fake_at.then(Scripted(status=500, body="Internal Server Error", content_type="text/plain"))
    with at_runtime.db.transaction() as session:
        queue_sms(session, PHONE, MessageKind.OTP, "code ******", secret="code 482913")
    with caplog.at_level(logging.DEBUG):
        from workers.worker import build_worker

        build_worker(at_runtime).work(burst=True, max_jobs=1)
    assert any("raised" in record.getMessage() for record in caplog.records)  # the failure was logged
    for record in caplog.records:
        assert "482913" not in record.getMessage()
        assert all("482913" not in repr(value) for value in vars(record).values())


@pytest.mark.parametrize("outage", ["brief", "long"])
def test_answers_the_database_could_not_take_are_recorded_never_sent_again(at_runtime, fake_at, monkeypatch,
                                                                             outage):
    """The database goes away just as AT's answers come back. Brief: the worker records them once
    it is back. Long: they wait in Redis and the reconciler records them before it reclaims a
    lease. Either way no message is sent twice (a premium reply would be charged twice)."""
    from sqlalchemy.exc import OperationalError

    from workers import sending, unrecorded

    real_record = sending.record
    failures = {"left": 2 if outage == "brief" else 10**6}

    def record_while_away(session, *args, **kwargs):
        if failures["left"] > 0:
            failures["left"] -= 1
            raise OperationalError("UPDATE outbound_messages", {}, Exception("server closed the connection"))
        return real_record(session, *args, **kwargs)

    monkeypatch.setattr(sending, "record", record_while_away)
    if outage == "long":
        monkeypatch.setattr(sending, "RECORD_PATIENCE_S", 0.0)
    with at_runtime.db.transaction() as session:
        for n, phone in enumerate((PHONE, "+254722000111")):
            queue_sms(session, phone, MessageKind.REPLY, f"reply {n}", link_id=f"link-{n}")
    work_queues(at_runtime)
    assert len(fake_at.requests) == 2
    if outage == "long":
        assert at_runtime.redis.hlen(unrecorded.KEY) == 2
        assert {row.status for row in outbox_rows(at_runtime)} == {MessageStatus.SUBMITTED}
        monkeypatch.setattr(sending, "record", real_record)  # the database is back
        report = reconcile(at_runtime, now=utcnow() + LATER)  # every lease long run out
        assert (report.recorded, report.reclaimed, report.enqueued) == (2, 0, 0)
    work_queues(at_runtime)
    assert reconcile(at_runtime, now=utcnow() + LATER).reclaimed == 0
    work_queues(at_runtime)
    assert len(fake_at.requests) == 2  # each message once
    assert at_runtime.redis.hlen(unrecorded.KEY) == 0
    rows = outbox_rows(at_runtime)
    assert all(row.accepted_at is not None and row.provider_message_id for row in rows)


def test_a_send_interrupted_mid_batch_records_what_went_out_and_sends_the_rest_once(at_runtime, fake_at,
                                                                                    monkeypatch):
    """A job's time runs out (RQ raises in the sending thread) while a batch's requests are in
    flight: the ones AT answered are recorded, the ones never started go back for a retry, and
    no phone gets its message twice (all went back to ``queued`` and were sent again)."""
    import signal

    from workers import sending

    class TimeRanOut(Exception):
        pass

    def ran_out(*_):
        raise TimeRanOut

    phones = [f"+2547220001{n:02d}" for n in range(8)]
    with at_runtime.db.transaction() as session:
        ids = [queue_sms(session, phone, MessageKind.REPLY, f"reply {n}").id for n, phone in enumerate(phones)]
    at_runtime.redis.flushdb()  # no jobs: this test sends the batch itself
    backend = sending.backend_of(at_runtime)
    monkeypatch.setattr(backend, "concurrency", 2)
    fake_at.delay = 0.3
    with at_runtime.db.transaction() as session:
        claimed = sending.claim(session, ids, {}, backend.name)
    previous = signal.signal(signal.SIGALRM, ran_out)
    signal.setitimer(signal.ITIMER_REAL, 0.5)
    try:
        with pytest.raises(TimeRanOut):
            sending.send_claimed(at_runtime, claimed, backend=backend)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    sent_first = len(fake_at.requests)
    assert 2 <= sent_first < 8  # two threads: some answered, some never started
    rows = {row.id: row for row in outbox_rows(at_runtime)}
    assert sum(row.accepted_at is not None for row in rows.values()) == sent_first
    assert all(row.status == MessageStatus.QUEUED for row in rows.values() if row.accepted_at is None)
    fake_at.delay = 0.0
    with at_runtime.db.transaction() as session:  # their retry interval has passed
        session.query(OutboundMessage).filter_by(status=MessageStatus.QUEUED).update(
            {"next_attempt_at": utcnow() - timedelta(minutes=5)})
    assert reconcile(at_runtime).enqueued == 8 - sent_first  # no job survived the flush above
    work_queues(at_runtime)
    assert sorted(r for seen in fake_at.requests for r in seen.recipients) == sorted(phones)  # each once


def _otp_job_keys_expire_with_the_code(runtime, message_id: int) -> bool:
    """Every key of the OTP job (its hash with the clear text, its results) expires within OTP_JOB_TTL."""
    from workers.queues import OTP_JOB_TTL

    redis = runtime.redis
    kept = [key for key in redis.scan_iter() if f"sms-{message_id}".encode() in key and redis.type(key) != b"zset"]
    return bool(kept) and all(0 < redis.ttl(key) <= OTP_JOB_TTL for key in kept)


def _database_away(*args, **kwargs):
    from sqlalchemy.exc import OperationalError

    raise OperationalError("UPDATE outbound_messages", {}, Exception("server closed the connection"))


def test_a_failed_otp_job_keeps_its_code_no_longer_than_an_otp_job_waits(sms_runtime, quick_retries, monkeypatch):
    """An OTP job's arguments carry the code's clear text: failed (here the database is away on every
    attempt), RQ keeps the job and its failure record only as long as an OTP job may wait, not a week."""
    monkeypatch.setattr(jobs, "deliver", _database_away)
    with sms_runtime.db.transaction() as session:
        otp = queue_sms(session, PHONE, MessageKind.OTP, "code ******", secret="code 482913")
    work_queues(sms_runtime)
    job = Job.fetch(f"sms-{otp.id}", connection=sms_runtime.redis)
    assert job.is_failed and job.args == (otp.id, "code 482913")
    assert _otp_job_keys_expire_with_the_code(sms_runtime, otp.id)


def test_an_otp_job_waiting_out_a_retry_keeps_its_code_no_longer_either(sms_runtime, monkeypatch):
    from workers.worker import build_worker

    monkeypatch.setattr(jobs, "deliver", _database_away)
    with sms_runtime.db.transaction() as session:
        otp = queue_sms(session, PHONE, MessageKind.OTP, "code ******", secret="code 482913")
    build_worker(sms_runtime).work(burst=True, max_jobs=1, logging_level="WARNING")
    assert ScheduledJobRegistry("sms-otp", connection=sms_runtime.redis).get_job_ids() == [f"sms-{otp.id}"]
    assert _otp_job_keys_expire_with_the_code(sms_runtime, otp.id)


def test_a_retry_job_of_its_own_waits_what_the_row_waits_each_time(at_runtime, fake_at):
    """The drill's AT outage: a reply retried out of a failed batch got RQ's retry policy from its
    first interval, so when it failed again RQ ran it after 10 s while the row waited 30 s; the job
    found the row not due, ended, and the reply waited minutes for the reconciler. Its policy now
    starts at the interval of its next attempt, and a re-enqueued row's at the attempts it had."""
    from workers.queues import SendJob, _job_options, max_attempts, retry_delay

    phones = [f"+2547{n:08d}" for n in range(3)]
    fake_at.then(Scripted(codes={phones[2]: 500}))
    with at_runtime.db.transaction() as session:
        rows = queue_many(session, [(p, MessageKind.ANNOUNCEMENT, "Bulk", None) for p in phones], announcement_id=1)
    work_queues(at_runtime)
    job = Job.fetch(f"sms-{rows[2]}-retry1", connection=at_runtime.redis)
    assert job.retries_left == max_attempts("sms-bulk") - 2  # attempt 2 is this job's own run
    assert job.retry_intervals[0] == retry_delay("sms-bulk", 2)
    assert _job_options(SendJob(7, "sms-reply", attempts=max_attempts("sms-reply") - 1))["retry"] is None
