"""Sending outbox rows: claim, hand to the backend, record. The database is the truth.

1. **Claim** in a short transaction: ``queued -> submitted`` with a conditional UPDATE (only rows
   still ``queued``), so two workers holding the same message id never both send it. An OTP is
   claimed only together with its clear text; without it the row expires (never sent redacted).
   A bulk message brings along other queued rows of its announcement (one request per batch).
   The inbound drain skips this step: it writes its replies already claimed
   (``registry.outbox.queue_claimed``), runs the claim's disclosure check on them after its commit
   (``check_claimed``) and sends them with ``send_claimed``.
2. **Send** outside any transaction.
3. **Record** per message: accepted (provider id, status code, cost; never submitted again),
   unconfirmed (a premium reply whose answer was lost: recorded as accepted without a provider
   id, never submitted again; a delivery report for its phone supplies the id), refused for good
   (failed, with the reason), or retryable (back to ``queued`` with the next attempt time, or
   failed once the attempts are used up).

A worker killed between 1 and 3 leaves rows ``submitted`` without ``accepted_at``; the reconciler
puts them back to ``queued`` after a lease, so the message goes out again: the only duplicate
possible is that one in-flight message (the provider may have taken it just before the kill).
Results the database cannot take (an outage during 3) are kept in Redis until recorded
(``workers.unrecorded``), so an outage alone never sends a message twice.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING

from rq.job import Job
from sqlalchemy import case, or_, select, update
from sqlalchemy.orm import Session

from gateway.degraded import is_outage
from gateway.metrics import SMS_MESSAGES, SMS_SEND_ERRORS
from registry.arrays import among, update_rows
from registry.models import Announcement, MessageKind, MessageStatus, OutboundMessage, PhoneSetting, utcnow
from registry.outbox import CANCELLED, OPTED_OUT, Claimed
from registry.services.accounts import OTP_VALID
from registry.services.withdrawals import names_learners, withdraw_unverified

from . import unrecorded
from .backends import Backend, Outcome, Outgoing, SendInterrupted, SendResult
from .backends.africastalking import error_label
from .context import backend_of, queues_of
from .queues import SendJob, max_attempts, retry_delay, send_job_id

if TYPE_CHECKING:
    from gateway.runtime import Runtime

log = logging.getLogger(__name__)

BULK_BATCH = 100
DUE_SLACK = timedelta(seconds=2)  # RQ's scheduler and ours poll each second
_METRIC_STATUS = {Outcome.ACCEPTED: "submitted", Outcome.DELIVERED: "delivered", Outcome.FAILED: "failed",
                  Outcome.UNCONFIRMED: "unconfirmed"}
_T = OutboundMessage.__table__


class RetryableSendError(Exception):
    """Raised by a send job so RQ retries it later (the reason carries no personal data)."""


@dataclass(frozen=True)
class Retry:
    message_id: int
    priority: str
    attempts: int
    delay: int
    reason: str


@dataclass
class Summary:
    claimed: int = 0
    accepted: int = 0
    failed: int = 0
    retries: list[Retry] = field(default_factory=list)

    def retry_of(self, message_id: int) -> Retry | None:
        return next((r for r in self.retries if r.message_id == message_id), None)


# An announcement to a phone that sent STOP: ended at its claim instead of sent. STOP ends the rows
# already queued (``cancel_announcements``), but not those of an announcement still being written
# when it commits (their rows are not visible to it yet): the claim reads the phone's setting.
_OPTED_OUT_ANNOUNCEMENT = (OutboundMessage.kind == MessageKind.ANNOUNCEMENT) & (
    select(PhoneSetting.phone)
    .where(PhoneSetting.phone == OutboundMessage.recipient, PhoneSetting.opted_out.is_(True))
    .exists()
)
# A message of an announcement cancelled (``elimu sms cancel-announcement``): ended at its claim
# too. The cancel ends the rows waiting at that moment; this catches one in flight then that goes
# back to waiting later (a lost worker's lease, a retry), whatever route brings it back.
_CANCELLED_ANNOUNCEMENT = OutboundMessage.announcement_id.is_not(None) & (
    select(Announcement.id)
    .where(Announcement.id == OutboundMessage.announcement_id, Announcement.cancelled_at.is_not(None))
    .exists()
)
# An OTP whose code has expired (``OTP_VALID`` after it was issued, with its message): the parent
# would get a dead code, so it expires at its claim. Only a message held up that long gets here: a
# worker lost mid-send (reclaimed after the 5-minute lease), a job that waited behind a backlog.
STALE_OTP = "code expired before it could be sent; a new one can be asked for"
_RETURNING = (
    OutboundMessage.id, OutboundMessage.recipient, OutboundMessage.body, OutboundMessage.kind,
    OutboundMessage.link_id, OutboundMessage.attempts, OutboundMessage.priority, OutboundMessage.announcement_id,
)


def claim(session: Session, ids: Sequence[int], clear: Mapping[int, str], provider: str) -> list[Claimed]:
    """Mark the rows among ``ids`` that are queued and due submitted. An OTP claimed without its
    clear text (its job was recreated from the database), or older than its code, expires at once
    instead, and an announcement to a phone that opted out (STOP), or of an announcement cancelled, ends failed, unsent,
    as does a transfer notice or a UPI message naming a learner its phone is no longer verified for
    (``withdraw_unverified``).

    A row waiting out a retry interval is not due: a job running early (its first job, still in a
    queue when the batch it shared failed) leaves it to the retry scheduled for it.
    """
    if not ids:
        return []
    now = utcnow()
    stopped, cancelled = _OPTED_OUT_ANNOUNCEMENT, _CANCELLED_ANNOUNCEMENT
    stale = (OutboundMessage.kind == MessageKind.OTP) & (OutboundMessage.created_at <= now - OTP_VALID)
    ended = stopped | cancelled | stale
    statement = (
        update(OutboundMessage)
        .where(
            among(session, OutboundMessage.id, ids),
            OutboundMessage.status == MessageStatus.QUEUED,
            or_(OutboundMessage.next_attempt_at.is_(None), OutboundMessage.next_attempt_at <= now + DUE_SLACK),
        )
        .values(status=case((stale, MessageStatus.EXPIRED.value), (ended, MessageStatus.FAILED.value),
                            else_=MessageStatus.SUBMITTED.value),
                failure_reason=case((stale, STALE_OTP), (stopped, OPTED_OUT), (cancelled, CANCELLED),
                                    else_=OutboundMessage.failure_reason),
                next_attempt_at=case((ended, None), else_=OutboundMessage.next_attempt_at),
                attempts=case((ended, OutboundMessage.attempts), else_=OutboundMessage.attempts + 1),
                submitted_at=now, provider=provider, updated_at=now)
        .returning(*_RETURNING, OutboundMessage.status)
        .execution_options(synchronize_session=False)
    )
    claimed = [
        Claimed(row.id, row.recipient, row.body, str(row.kind), row.link_id, row.attempts, str(row.priority),
                row.announcement_id)
        for row in session.execute(statement) if row.status == MessageStatus.SUBMITTED
    ]
    orphans = [c.id for c in claimed if c.kind == MessageKind.OTP and c.id not in clear]
    if orphans:
        expire_orphaned_otps(session, orphans, MessageStatus.SUBMITTED)
        claimed = [c for c in claimed if c.id not in orphans]
    return withdraw_unverified(session, claimed)  # a notice or UPI whose phone lost its learner since queued


def expire_orphaned_otps(session: Session, ids: Sequence[int], status: MessageStatus = MessageStatus.QUEUED) -> int:
    """OTP rows whose clear text is gone (lost with Redis): expired, never sent redacted."""
    if not ids:
        return 0
    now = utcnow()
    result = session.execute(
        update(OutboundMessage)
        .where(among(session, OutboundMessage.id, ids), OutboundMessage.kind == MessageKind.OTP,
               OutboundMessage.status == status)
        .values(status=MessageStatus.EXPIRED, failure_reason="code lost before sending; a new one can be asked for",
                updated_at=now)
        .execution_options(synchronize_session=False)
    )
    return result.rowcount or 0


def companions(session: Session, announcement_id: int, limit: int) -> list[int]:
    """Other queued rows of an announcement, oldest first, skipping rows another worker holds."""
    query = (
        select(OutboundMessage.id)
        .where(OutboundMessage.announcement_id == announcement_id, OutboundMessage.status == MessageStatus.QUEUED,
               or_(OutboundMessage.next_attempt_at.is_(None), OutboundMessage.next_attempt_at <= utcnow()))
        .order_by(OutboundMessage.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    return list(session.scalars(query))


def deliver(
    runtime: Runtime, ids: Sequence[int], clear: Mapping[int, str] | None = None, *, batch_bulk: bool = True
) -> Summary:
    """Claim, send and record the messages ``ids``; with ``batch_bulk`` a bulk message also takes
    up to a batch of its announcement's other queued messages into the same request."""
    clear = clear or {}
    backend = backend_of(runtime)
    with runtime.db.transaction() as session:
        claimed = claim(session, ids, clear, backend.name)
        bulk = [c for c in claimed if c.announcement_id is not None]
        joined: list[Claimed] = []
        if batch_bulk and bulk:
            extra = companions(session, bulk[0].announcement_id, BULK_BATCH - len(claimed))  # type: ignore[arg-type]
            joined = claim(session, extra, clear, backend.name)
            claimed += joined
    if not claimed:
        return Summary()
    if joined:
        drop_waiting_jobs(runtime, [c.id for c in joined])
    return send_claimed(runtime, claimed, clear, backend=backend)


def check_claimed(runtime: Runtime, claimed: Sequence[Claimed]) -> list[Claimed]:
    """The send-time disclosure check of ``claim`` (``withdraw_unverified``) for rows written already
    claimed, which never pass through it: the inbound drain's replies, run after the commit that
    wrote them, so an unlink, erasure or learner deletion committing before the send is seen (one
    that commits later finds them in flight, as it finds a claimed row). Returns those still to
    send. A batch holding no UPI message or notice opens no transaction (``names_learners``)."""
    if not names_learners(claimed):
        return list(claimed)
    with runtime.db.transaction() as session:
        return withdraw_unverified(session, claimed)


def send_claimed(runtime: Runtime, claimed: Sequence[Claimed], clear: Mapping[int, str] | None = None, *,
                 backend: Backend | None = None) -> Summary:
    """Send rows this worker has claimed and record the results. When the backend fails outright
    the rows go back to ``queued`` (nothing was recorded) and the error is raised."""
    clear = clear or {}
    backend = backend or backend_of(runtime)
    summary = Summary(claimed=len(claimed))
    if not claimed:
        return summary
    outgoing = [
        Outgoing(c.id, c.recipient, clear.get(c.id, c.body), c.kind, c.link_id, bulk=c.announcement_id is not None)
        for c in claimed
    ]
    try:
        results = backend.send(outgoing)
    except SendInterrupted as interrupted:  # some went out: record them, the rest is retried
        _record_sent(runtime, claimed, _complete(claimed, interrupted.results), summary)
        raise interrupted.__cause__ or interrupted from None
    except BaseException:
        _release(runtime, [c.id for c in claimed])
        raise
    _record_sent(runtime, claimed, _complete(claimed, results), summary)
    return summary


def _complete(claimed: Sequence[Claimed], results: Sequence[SendResult]) -> list[SendResult]:
    by_id = {result.message_id: result for result in results}
    return [by_id.get(c.id) or SendResult(c.id, Outcome.RETRY, reason="no result from backend") for c in claimed]


RECORD_PATIENCE_S = 60.0  # how long a worker retries recording results the database refused


def _record_sent(runtime: Runtime, claimed: Sequence[Claimed], results: Sequence[SendResult],
                 summary: Summary) -> None:
    """Record the answers in hand; never lose them to a database outage. Their rows would stay
    ``submitted`` and be sent again when their lease runs out (a premium reply charged twice), so
    they are kept in Redis (``workers.unrecorded``, which the reconciler records before reclaiming
    any lease) and recording is retried here for ``RECORD_PATIENCE_S``."""
    kept = False
    delay, deadline = 0.25, time.monotonic() + RECORD_PATIENCE_S
    while True:
        attempt = Summary()
        try:
            with runtime.db.transaction() as session:
                record(session, claimed, results, attempt)
        except Exception as exc:
            if not is_outage(exc):
                raise
            if not kept:
                kept = unrecorded.keep(runtime, claimed, results)
            if time.monotonic() + delay > deadline:
                log.error("send results of %d messages not recorded (%s): %s", len(results), type(exc).__name__,
                          "kept in Redis for the reconciler" if kept else "not kept either: their lease will "
                          "send them again")
                return
            time.sleep(delay)
            delay = min(delay * 2, 8.0)
            continue
        summary.accepted += attempt.accepted
        summary.failed += attempt.failed
        summary.retries += attempt.retries
        if kept:
            unrecorded.forget(runtime, [r.message_id for r in results])
        return


def drop_waiting_jobs(runtime: Runtime, message_ids: Sequence[int]) -> None:
    """Delete the still-waiting jobs of messages that joined another job's batch: RQ skips a queued
    id whose job is gone in two commands, where running the job (to find nothing to do) costs ~25.
    Best effort: a job left behind only finds its row taken."""
    try:
        redis = runtime.redis
        keys = [Job.key_for(send_job_id(message_id)) for message_id in message_ids]
        pipe = redis.pipeline(transaction=False)
        for key in keys:
            pipe.hget(key, "status")
        waiting = [key for key, status in zip(keys, pipe.execute(), strict=True) if status in (b"queued", "queued")]
        if waiting:
            redis.delete(*waiting)
    except Exception as exc:  # noqa: BLE001 - an optimisation only
        log.info("could not drop batched jobs (%s)", type(exc).__name__)


def _release(runtime: Runtime, ids: Sequence[int]) -> None:
    """Put claimed rows back to queued after an unexpected backend error (nothing was recorded)."""
    with runtime.db.transaction() as session:
        session.execute(
            update(OutboundMessage)
            .where(among(session, OutboundMessage.id, ids), OutboundMessage.status == MessageStatus.SUBMITTED,
                   OutboundMessage.accepted_at.is_(None))
            .values(status=MessageStatus.QUEUED, updated_at=utcnow())
            .execution_options(synchronize_session=False)
        )


def record(session: Session, claimed: Sequence[Claimed], results: Sequence[SendResult], summary: Summary) -> None:
    """Write each result onto its (submitted) row: one statement per kind of outcome."""
    now = utcnow()
    rows = {c.id: c for c in claimed}
    accepted, delivered, failed, requeued = [], [], [], []
    counted: list[tuple[str, str]] = []  # metric labels, counted once the rows are written
    errors: list[tuple[str, str]] = []  # (why, what became of the message) of each send not taken
    for result in results:
        row = rows[result.message_id]
        base = {"id": row.id, "status_code": result.status_code, "failure_reason": result.reason}
        metric = _METRIC_STATUS.get(result.outcome, "retry")
        if result.outcome in (Outcome.ACCEPTED, Outcome.UNCONFIRMED):  # taken (or maybe): never sent again
            accepted.append(base | {"provider_message_id": result.provider_message_id, "cost": result.cost})
        elif result.outcome is Outcome.DELIVERED:
            delivered.append(base | {"provider_message_id": result.provider_message_id, "cost": result.cost,
                                     "failure_reason": None})
        elif result.outcome is Outcome.FAILED:
            failed.append(base)
        elif row.attempts >= max_attempts(row.priority):
            failed.append(base | {"failure_reason": f"gave up after {row.attempts} attempts: {result.reason}"[:200]})
            metric = "failed"  # the last attempt: the message has failed, not gone back to the queue
        else:
            delay = retry_delay(row.priority, row.attempts)
            requeued.append(base | {"next_attempt_at": now + timedelta(seconds=delay)})
            summary.retries.append(Retry(row.id, row.priority, row.attempts, delay, result.reason or "retry"))
        counted.append((row.kind, metric))
        if metric in ("retry", "failed", "unconfirmed"):
            errors.append((error_label(result), metric))
    submitted = {"status": MessageStatus.SUBMITTED}
    update_rows(session, _T, accepted, where=submitted, accepted_at=now, next_attempt_at=None, updated_at=now)
    update_rows(session, _T, delivered, where=submitted, status=MessageStatus.DELIVERED.value, accepted_at=now,
                sent_at=now, delivered_at=now, next_attempt_at=None, updated_at=now)
    update_rows(session, _T, failed, where=submitted, status=MessageStatus.FAILED.value, next_attempt_at=None,
                updated_at=now)
    update_rows(session, _T, requeued, where=submitted, status=MessageStatus.QUEUED.value, updated_at=now)
    # one increment per set of labels of the batch, not per message (labels() and inc() cost ~7 us a call)
    for labels, count in Counter(counted).items():
        SMS_MESSAGES.labels(*labels).inc(count)
    for labels, count in Counter(errors).items():
        SMS_SEND_ERRORS.labels(*labels).inc(count)
    summary.accepted += len(accepted) + len(delivered)
    summary.failed += len(failed)


def schedule_retries(runtime: Runtime, retries: Sequence[Retry], skip: int | None = None) -> None:
    """Give each retried message (but ``skip``, whose own job RQ retries) a job after its delay."""
    by_delay: dict[int, list[SendJob]] = {}
    for retry in retries:
        if retry.message_id != skip:
            job = SendJob(retry.message_id, retry.priority, retry=retry.attempts, attempts=retry.attempts)
            by_delay.setdefault(retry.delay, []).append(job)
    for delay, jobs in by_delay.items():
        queues_of(runtime).enqueue_sends(jobs, delay=delay)
