"""The reconciler: the database is the truth, Redis only carries work. Run by every ``elimu worker``
on a schedule (one at a time, under a Redis lock) and by ``elimu sms reconcile``.

- Send results kept in Redis while the database was away (``workers.unrecorded``): recorded first.
- Rows ``submitted`` but never accepted, older than the lease: the worker died mid-send. Back to
  ``queued`` and sent again (that one message may reach the phone twice: the in-flight duplicate).
- Rows ``queued`` past the grace period with no job waiting in Redis (Redis flushed or restarted,
  RQ's retries used up, a job popped by a worker killed before it started it, a retry dropped
  between RQ's scheduled registry and its queue): enqueued again. Waiting means found on its queue
  or in its registry, not a job's word for it. An OTP is re-enqueued only from its surviving job (the
  only place its clear text exists); when that is gone the row expires instead of going out redacted.
- Inbound messages still unanswered past the grace period and not waiting on the drains' list
  (``workers.inbound.hand_over_stale``): handed to the drains again.
- Delivery reports kept because their id matched no message yet (``workers.reports``): applied
  again; messages taken without a provider id that no report confirmed within a day: expired.
"""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from rq.exceptions import NoSuchJobError
from rq.job import Job
from rq.registry import DeferredJobRegistry, ScheduledJobRegistry
from sqlalchemy import select, update

from gateway.metrics import RECONCILED, RECONCILER_PASSES
from registry.models import MessageKind, MessageStatus, OutboundMessage, utcnow
from registry.outbox import LEASE
from registry.services.sms_delivery import settle_unconfirmed

from .context import queues_of
from .inbound import hand_over_stale
from .queues import SendJob, send_job_id
from .reports import replay as replay_reports
from .sending import expire_orphaned_otps, schedule_retries
from .unrecorded import record_kept

if TYPE_CHECKING:
    from gateway.runtime import Runtime

log = logging.getLogger(__name__)

GRACE = timedelta(minutes=3)  # a queued row this old without a waiting job is re-enqueued
LIMIT = 10_000  # rows per run; the next run takes the rest
LOCK_KEY = "elimu:sms:reconcile-lock"
LOCK_S = 120  # a pass longer than this (a slow database) may find another reconciler started beside it


@dataclass
class Report:
    recorded: int = 0  # send results kept in Redis while the database was away, now recorded
    reclaimed: int = 0  # submitted rows of a lost worker, queued again
    enqueued: int = 0
    expired: int = 0  # OTPs whose clear text was lost
    waiting: int = 0  # queued rows whose job is still waiting in Redis
    inbound: int = 0  # unanswered inbound messages handed over again
    reports: int = 0  # kept delivery reports that matched a message now
    unconfirmed: int = 0  # messages taken without an id and never confirmed, expired
    locked: bool = False  # another reconciler was running; nothing done

    def __str__(self) -> str:
        if self.locked:
            return "another reconciler is running; nothing done"
        return (f"{self.recorded} kept send results recorded, "
                f"{self.enqueued} enqueued again ({self.reclaimed} from lost workers), {self.expired} OTPs "
                f"expired, {self.waiting} still waiting, {self.inbound} inbound handed over again, "
                f"{self.reports} delivery reports matched late, {self.unconfirmed} unconfirmed expired")


def reconcile(
    runtime: Runtime, *, grace: timedelta = GRACE, lease: timedelta = LEASE, now: datetime | None = None,
    lock: bool = True,
) -> Report:
    """One pass; ``now`` (default: the clock) is what the grace and lease are measured back from."""
    report = Report()
    token = secrets.token_hex(8)
    if lock and not runtime.redis.set(LOCK_KEY, token, nx=True, ex=LOCK_S):
        report.locked = True
        RECONCILER_PASSES.labels("locked").inc()
        return report
    try:
        _reconcile(runtime, grace, lease, now or utcnow(), report)
    except BaseException:
        RECONCILER_PASSES.labels("failed").inc()
        raise
    finally:
        # only its own: a pass that outlived the lock leaves the one another reconciler took since
        if lock and runtime.redis.get(LOCK_KEY) == token.encode():
            runtime.redis.delete(LOCK_KEY)
        _count(report)
    RECONCILER_PASSES.labels("done").inc()
    if report.recorded or report.enqueued or report.expired or report.inbound or report.reports or report.unconfirmed:
        log.info("reconciler: %s", report)
    return report


def _count(report: Report) -> None:
    """What a pass put right, also one an outage cut short (``elimu_reconciled_total{action}``)."""
    for action, count in (("recorded", report.recorded), ("reclaimed", report.reclaimed),
                          ("enqueued", report.enqueued), ("otp_expired", report.expired),
                          ("inbound", report.inbound), ("reports", report.reports),
                          ("unconfirmed_expired", report.unconfirmed)):
        if count:
            RECONCILED.labels(action).inc(count)


def _reconcile(runtime: Runtime, grace: timedelta, lease: timedelta, now: datetime, report: Report) -> None:
    kept = record_kept(runtime)  # first: a message whose answer came back is not "lost mid-send"
    report.recorded = kept.accepted + kept.failed + len(kept.retries)
    schedule_retries(runtime, kept.retries)
    with runtime.db.transaction() as session:
        reclaimed = set(session.scalars(
            update(OutboundMessage)
            .where(OutboundMessage.status == MessageStatus.SUBMITTED, OutboundMessage.accepted_at.is_(None),
                   OutboundMessage.submitted_at < now - lease)
            .values(status=MessageStatus.QUEUED, next_attempt_at=utcnow(), updated_at=utcnow(),
                    failure_reason="worker lost mid-send; sending again")
            .returning(OutboundMessage.id)
            .execution_options(synchronize_session=False)
        ))
        rows = session.execute(
            select(OutboundMessage.id, OutboundMessage.kind, OutboundMessage.priority, OutboundMessage.attempts)
            .where(OutboundMessage.status == MessageStatus.QUEUED, OutboundMessage.next_attempt_at < now - grace)
            .order_by(OutboundMessage.id)
            .limit(LIMIT)
        ).all()
        if reclaimed:
            known = {row.id for row in rows}
            rows += session.execute(
                select(OutboundMessage.id, OutboundMessage.kind, OutboundMessage.priority, OutboundMessage.attempts)
                .where(OutboundMessage.id.in_(reclaimed - known))
            ).all()
    report.reclaimed = len(reclaimed)
    _requeue(runtime, rows, reclaimed, report)
    report.inbound = hand_over_stale(runtime, now - grace)
    with runtime.db.transaction() as session:
        report.unconfirmed = settle_unconfirmed(session, now)
    report.reports = replay_reports(runtime, now)


def _requeue(runtime: Runtime, rows, reclaimed: set[int], report: Report) -> None:
    if not rows:
        return
    redis = runtime.redis
    queues = queues_of(runtime)
    statuses, live = _job_states(runtime, rows)
    fresh: list[SendJob] = []
    orphaned_otps: list[int] = []
    for row, status, waiting in zip(rows, statuses, live, strict=True):
        if waiting and row.id not in reclaimed:
            report.waiting += 1
        elif row.kind == MessageKind.OTP:
            if status is None:
                orphaned_otps.append(row.id)
                continue
            try:
                job = Job.fetch(send_job_id(row.id), connection=redis)
            except NoSuchJobError:
                orphaned_otps.append(row.id)
                continue
            queues.get(str(row.priority)).enqueue_job(job)
            report.enqueued += 1
        else:
            fresh.append(SendJob(row.id, str(row.priority), attempts=row.attempts))
    report.enqueued += queues.enqueue_sends(fresh)
    if orphaned_otps:
        with runtime.db.transaction() as session:
            report.expired = expire_orphaned_otps(session, orphaned_otps)


def _job_states(runtime: Runtime, rows) -> tuple[list[str | None], list[bool]]:
    """Each row's job ``sms-<id>``: its status, and whether it is really waiting. A job is waiting
    when it is where its status says, on its queue (``queued``) or in its queue's scheduled or
    deferred registry, not for saying so: a worker killed after RQ popped the job and before it
    started it, or ``promote_due`` killed between a retry's registry and its queue, leaves a job
    that says ``queued`` or ``scheduled`` and that nothing will run. Read in one MULTI, so a job
    moving meanwhile is seen in one place; one taken by a worker that has not marked it started
    yet looks lost and gets a second job, which finds the row claimed (a conditional UPDATE)."""
    queues = queues_of(runtime)
    names = sorted({str(row.priority) for row in rows})
    pipe = runtime.redis.pipeline(transaction=True)
    for row in rows:
        job_id, name = send_job_id(row.id), str(row.priority)
        pipe.hget(Job.key_for(job_id), "status")
        pipe.zscore(ScheduledJobRegistry(name, connection=runtime.redis).key, job_id)
        pipe.zscore(DeferredJobRegistry(name, connection=runtime.redis).key, job_id)
    for name in names:
        pipe.lrange(queues.get(name).key, 0, -1)
    replies = pipe.execute()
    on_queue = {name: {_text(job_id) for job_id in ids}
                for name, ids in zip(names, replies[3 * len(rows):], strict=True)}
    statuses: list[str | None] = []
    live: list[bool] = []
    for n, row in enumerate(rows):
        raw, scheduled, deferred = replies[3 * n:3 * n + 3]
        status = _text(raw) if raw is not None else None
        statuses.append(status)
        live.append((status == "queued" and send_job_id(row.id) in on_queue[str(row.priority)])
                    or (status == "scheduled" and scheduled is not None)
                    or (status == "deferred" and deferred is not None))
    return statuses, live


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
