"""The SMS queues: names in priority order, job ids, retry policy, and enqueueing send jobs.

One RQ job per outbound message, id ``sms-<message id>``, on the queue of the message's priority.
The clear text of an OTP rides only in the job's arguments (the database keeps it redacted).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import redis as redis_lib
from rq import Queue, Retry
from rq.job import JobStatus

from registry.models import Priority

INBOUND_QUEUE = "sms-inbound"
# Workers listen in this order: codes first, then replies, then new inbound texts, bulk last.
QUEUE_ORDER = (Priority.OTP.value, Priority.REPLY.value, INBOUND_QUEUE, Priority.BULK.value)

# Seconds before each retry of a retryable failure; the attempts allowed are one more than retries.
# OTPs retry briefly (a code lives five minutes); bulk notices back off for longer.
RETRY_INTERVALS: dict[str, tuple[int, ...]] = {
    Priority.OTP.value: (5, 15, 30, 60),
    Priority.REPLY.value: (10, 30, 120, 300, 900),
    Priority.BULK.value: (30, 120, 600, 1800, 3600),
}
OTP_JOB_TTL = 600  # an OTP job not started within 10 minutes is dropped (the reconciler expires its row)
JOB_TIMEOUT = 180  # seconds one send job may run (a bulk batch waits for the throttle)
FAILURE_TTL = 7 * 24 * 3600  # a failed job is kept this long for inspection, but an OTP's (``_job_options``)


def send_job_id(message_id: int, retry: int | None = None) -> str:
    """``sms-<id>``; a retry scheduled for a message that shared a failed batch is ``sms-<id>-retry<n>``
    (its first job may still sit in a queue: a distinct id keeps the two apart)."""
    return f"sms-{message_id}" if retry is None else f"sms-{message_id}-retry{retry}"


def retry_intervals(priority: str) -> tuple[int, ...]:
    return RETRY_INTERVALS.get(priority, RETRY_INTERVALS[Priority.REPLY.value])


def max_attempts(priority: str) -> int:
    """Submissions a message gets before a retryable failure becomes final."""
    return len(retry_intervals(priority)) + 1


def retry_delay(priority: str, attempts: int) -> int:
    """Seconds before the next try of a message that has had ``attempts`` submissions."""
    intervals = retry_intervals(priority)
    return intervals[min(max(attempts, 1), len(intervals)) - 1]


def retry_policy(priority: str, attempts: int = 0) -> Retry | None:
    """RQ's retries of a job whose message had ``attempts`` submissions before it: each waits what
    the row waits after that attempt fails (``retry_delay``), so a retry never finds the row not yet
    due; None when the job's own run is the last attempt."""
    intervals = list(retry_intervals(priority))[attempts:]
    return Retry(max=len(intervals), interval=intervals) if intervals else None


@dataclass(frozen=True)
class SendJob:
    message_id: int
    priority: str
    clear_body: str | None = None
    retry: int | None = None  # set for a retry scheduled outside RQ's own Retry (see send_job_id)
    attempts: int = 0  # submissions the message had before this job (``retry_policy``)


class Queues:
    """The RQ queues on one Redis connection (built once: a Queue asks Redis its version)."""

    def __init__(self, connection: redis_lib.Redis) -> None:
        self.connection = connection
        self._queues: dict[str, Queue] = {}

    def get(self, name: str) -> Queue:
        queue = self._queues.get(name)
        if queue is None:
            queue = self._queues[name] = Queue(name, connection=self.connection)
        return queue

    def ordered(self) -> list[Queue]:
        return [self.get(name) for name in QUEUE_ORDER]

    def enqueue_sends(self, jobs: Iterable[SendJob], delay: float = 0) -> int:
        """One ``send_message`` job per message, in one round trip per queue; with ``delay``
        seconds, scheduled for later (retries of messages that shared a failed batch)."""
        from .jobs import send_message

        by_queue: dict[str, list[SendJob]] = {}
        for job in jobs:
            by_queue.setdefault(job.priority, []).append(job)
        count = 0
        for name, group in by_queue.items():
            queue = self.get(name)
            if delay > 0:
                when = datetime.now(UTC) + timedelta(seconds=delay)
                with self.connection.pipeline() as pipe:
                    for job in group:
                        scheduled = queue.create_job(send_message, args=_job_args(job), status=JobStatus.SCHEDULED,
                                                     **_job_options(job))
                        queue.schedule_job(scheduled, when, pipeline=pipe)
                    pipe.execute()
            else:
                datas = [
                    Queue.prepare_data(send_message, args=_job_args(job), **_job_options(job)) for job in group
                ]
                with self.connection.pipeline() as pipe:
                    queue.enqueue_many(datas, pipeline=pipe)
                    pipe.execute()
            count += len(group)
        return count

    def depths(self) -> dict[str, int]:
        pipe = self.connection.pipeline(transaction=False)
        for name in QUEUE_ORDER:
            pipe.llen(self.get(name).key)
        return dict(zip(QUEUE_ORDER, pipe.execute(), strict=True))


def _job_args(job: SendJob) -> tuple[object, ...]:
    return (job.message_id,) if job.clear_body is None else (job.message_id, job.clear_body)


def _job_options(job: SendJob) -> dict[str, object]:
    """RQ's options for a send job. A job on the OTP queue may carry a code's clear text in its
    arguments: RQ applies ``ttl`` each time it queues or schedules the job (a retry too) and
    ``failure_ttl`` once it has failed, so neither a waiting nor a failed job outlives the code."""
    urgent = job.priority == Priority.OTP.value
    return {
        "job_id": send_job_id(job.message_id, job.retry),
        "retry": retry_policy(job.priority, job.attempts),
        "result_ttl": 0,
        "failure_ttl": OTP_JOB_TTL if urgent else FAILURE_TTL,
        "ttl": OTP_JOB_TTL if urgent else None,
        "timeout": JOB_TIMEOUT,
        "description": f"send SMS {job.message_id}",
    }


def job_ids(message_ids: Sequence[int]) -> list[str]:
    return [send_job_id(message_id) for message_id in message_ids]
