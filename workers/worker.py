"""The SMS worker process (``elimu worker``) and its housekeeping: scheduled retries and the reconciler."""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from datetime import timedelta
from typing import TYPE_CHECKING

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from rq import SimpleWorker
from rq.job import Job
from rq.job_lifecycle import call_exception_handlers, format_exc_info
from rq.registry import ScheduledJobRegistry
from rq.timeouts import TimerDeathPenalty

from gateway.degraded import replay_spool
from gateway.heap import freeze_start_up_objects
from gateway.logs import redact
from registry.models import Priority

from .context import queues_of, use_runtime
from .inbound import kick
from .queues import QUEUE_ORDER
from .reconcile import GRACE, reconcile

if TYPE_CHECKING:
    from gateway.runtime import Runtime

log = logging.getLogger(__name__)

RECONCILE_EVERY = 60.0  # seconds
PROMOTE_EVERY = 1.0  # seconds between moves of due retries from the scheduled registries to the queues
PROMOTE_LOCK = "elimu:sms:promote-lock"


class SmsWorker(SimpleWorker):
    """RQ's ``SimpleWorker``: runs each job in the worker process itself.

    RQ's default ``Worker`` forks a child per job to isolate it; for an SMS send (tens of
    milliseconds of work, mostly waiting on the database, Redis or AT) the fork costs more than
    the job, and the child cannot reuse the parent's database pool, Redis connection or the AT
    SDK's service, so every job would reconnect. Our jobs are short, idempotent and catch their
    own failures, so isolation buys little; throughput comes from running several worker
    processes (one ``elimu worker`` per core) and from the batching inside the jobs.

    Runs in a non-main thread too (the embedded worker): no signal handlers there, and job
    timeouts by timer instead of SIGALRM.
    """

    def __init__(self, *args, **kwargs) -> None:
        if threading.current_thread() is not threading.main_thread():
            self.death_penalty_class = TimerDeathPenalty
        kwargs.setdefault("log_job_description", True)  # descriptions name message ids only
        super().__init__(*args, **kwargs)

    def _install_signal_handlers(self) -> None:
        if threading.current_thread() is threading.main_thread():
            super()._install_signal_handlers()

    def unsubscribe(self) -> None:
        """RQ's, with the listening thread told to stop before the UNSUBSCRIBE whose answer wakes it.

        RQ 3 unsubscribes first and then calls ``PubSubWorkerThread.stop()``, which in redis-py 8
        waits for the thread. A thread that read the UNSUBSCRIBE's answer before its flag was
        cleared went back to waiting for a subscription, for RQ's 60 s sleep time: a worker took
        up to a minute to exit after its last job (seen in ``elimu worker --burst``; rq/rq#1613)."""
        thread = self.pubsub_thread
        if not thread:
            return
        self.log.info("Worker %s: unsubscribing from channel %s", self.name, self.pubsub_channel_name)
        try:
            thread.stop(timeout=0)  # clear the flag, do not wait yet
        except TypeError:  # redis-py before 8: stop() only clears the flag
            thread.stop()
        if thread.is_alive():
            # the answer wakes the thread, which now finds the flag cleared; a thread that ended
            # meanwhile closed the connection, and the subscription with it
            with contextlib.suppress(RedisConnectionError, RedisTimeoutError):
                self.pubsub.unsubscribe()
            thread.join(timeout=1)
        self.pubsub.close()

    def handle_job_failure(self, job: Job, queue, started_job_registry=None, exc_string: str = "",
                           execution=None) -> None:
        """RQ's, with the traceback it keeps in Redis masked as a log line is (``gateway.logs.redact``):
        RQ stores it in the failed-job registry and the job's result for ``failure_ttl`` (a week),
        where ``rq info`` and rq-dashboard show it, and an exception's text may quote a phone number,
        an index number or a database row."""
        super().handle_job_failure(job, queue, started_job_registry=started_job_registry,
                                   exc_string=redact(exc_string), execution=execution)

    def handle_exception(self, job: Job, *exc_info) -> None:
        """RQ's handler logs the job's arguments as log-record extras; an OTP's clear text rides in
        them, so this logs the job id, queue and traceback only."""
        self.log.error("Worker %s: job %s on %s raised\n%s", self.name, job.id, job.origin,
                       format_exc_info(exc_info))
        call_exception_handlers(self._exc_handlers, job, *exc_info)


def build_worker(runtime: Runtime, worker_ttl: int | None = None, *, bulk: bool = True) -> SmsWorker:
    """A worker on the SMS queues, most urgent first (``QUEUE_ORDER``: OTP, replies, inbound, bulk);
    without ``bulk``, on all but the bulk queue."""
    kwargs: dict[str, object] = {"connection": runtime.redis}
    if worker_ttl is not None:
        kwargs["worker_ttl"] = worker_ttl
    queues = [q for q in queues_of(runtime).ordered() if bulk or q.name != Priority.BULK.value]
    return SmsWorker(queues, **kwargs)


def promote_due(runtime: Runtime) -> int:
    """Move retries whose time has come from RQ's scheduled registries onto their queues.

    RQ's own scheduler runs in a forked process, which cannot see the embedded in-process Redis;
    this does the same work from a thread of any worker (under a short lock, one at a time).
    """
    redis = runtime.redis
    if not redis.set(PROMOTE_LOCK, "1", nx=True, px=5000):
        return 0
    moved = 0
    try:
        queues = queues_of(runtime)
        now = int(time.time())
        for name in QUEUE_ORDER:
            registry = ScheduledJobRegistry(name, connection=redis)
            ids = registry.get_jobs_to_schedule(now)
            if not ids:
                continue
            queue = queues.get(name)
            for job_id, job in zip(ids, Job.fetch_many(ids, connection=redis), strict=True):
                registry.remove(job_id)
                if job is not None:
                    queue.enqueue_job(job)
                    moved += 1
    finally:
        redis.delete(PROMOTE_LOCK)
    return moved


class Housekeeper(threading.Thread):
    """A daemon thread beside the worker: promotes due retries every second; every minute reconciles
    and replays the callbacks the web spooled during a database outage (``gateway.degraded``)."""

    def __init__(
        self, runtime: Runtime, reconcile_every: float = RECONCILE_EVERY, grace: timedelta = GRACE
    ) -> None:
        super().__init__(name="elimu-sms-housekeeper", daemon=True)
        self.runtime = runtime
        self.reconcile_every = reconcile_every
        self.grace = grace
        self._stopping = threading.Event()  # not _stop: Thread._stop is a method join() and fork call

    def run(self) -> None:
        last_reconcile = 0.0
        while not self._stopping.wait(PROMOTE_EVERY):
            try:
                promote_due(self.runtime)
                if time.monotonic() - last_reconcile >= self.reconcile_every:
                    last_reconcile = time.monotonic()
                    reconcile(self.runtime, grace=self.grace)
                    replay_spool(self.runtime)  # callbacks spooled by the web while the database was down
            except Exception as exc:  # noqa: BLE001 - keep housekeeping alive through outages
                log.warning("SMS housekeeping failed: %s", type(exc).__name__)

    def stop(self) -> None:
        self._stopping.set()


def run_worker(runtime: Runtime, *, burst: bool = False, logging_level: str = "INFO", bulk: bool = True) -> None:
    """``elimu worker``: work the SMS queues until stopped (``burst``: until they are empty).

    A burst first reconciles once, then works, moving retries that fall due meanwhile onto the
    queues, and stops when nothing is queued or due. Without ``bulk`` (``elimu worker --no-bulk``)
    the worker leaves announcements to the others, so a code never waits behind a batch of them.
    """
    use_runtime(runtime)
    if burst:
        reconcile(runtime)
        promote_due(runtime)
        waiting_before = None
        while True:
            build_worker(runtime, bulk=bulk).work(burst=True, logging_level=logging_level)
            if promote_due(runtime):
                continue
            waiting = kick(runtime)  # inbound handed back during an outage, its drain not yet due
            if not waiting or waiting == waiting_before:
                return
            waiting_before = waiting
    keeper = Housekeeper(runtime)
    keeper.start()
    try:
        worker = build_worker(runtime, bulk=bulk)
        freeze_start_up_objects()  # a code's send must not wait out a full pass over them (gateway.heap)
        worker.work(logging_level=logging_level)
    finally:
        keeper.stop()
