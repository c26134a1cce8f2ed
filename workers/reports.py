"""Delivery reports whose id no message has yet: kept a few minutes in Redis and applied again by
the reconciler.

A report can come before the worker has recorded its send's answer (the send is still in flight,
or a premium reply whose answer was lost is not yet recorded as such); applied at once it would be
lost. Only reports that name a phone are kept (the only ones that can match later), at most
``MAX_KEPT``, each for ``KEEP`` after it came: reports for messages another application sent on
the same AT account never match and are dropped then.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import redis as redis_lib
from sqlalchemy import select
from sqlalchemy.orm import Session

from gateway.metrics import DELIVERY_LAG
from registry.models import MessageStatus, OutboundMessage
from registry.services.sms_delivery import FINAL, ReportOutcome, apply_delivery_report

if TYPE_CHECKING:
    from gateway.runtime import Runtime

log = logging.getLogger(__name__)

KEY = "elimu:sms:unmatched-reports"
KEEP = timedelta(minutes=5)
MAX_KEPT = 5_000
REPLAY_LIMIT = 1_000  # reports applied again in one reconciler pass


def keep(redis: redis_lib.Redis | Any, provider_message_id: str, status: MessageStatus, failure_reason: str | None,
         phone: str, at: datetime) -> None:
    """Keep a report whose id matched no message, to be applied again (best effort)."""
    entry = json.dumps({"id": provider_message_id, "status": status.value, "reason": failure_reason,
                        "phone": phone, "at": at.isoformat()})
    try:
        pipe = redis.pipeline(transaction=False)
        pipe.rpush(KEY, entry)
        pipe.ltrim(KEY, -MAX_KEPT, -1)
        pipe.execute()
    except Exception as exc:  # noqa: BLE001 - the report is answered 200 either way
        log.info("unmatched delivery report not kept (%s)", type(exc).__name__)


def apply(runtime: Runtime, provider_message_id: str, status: MessageStatus, failure_reason: str | None,
          phone: str | None, at: datetime) -> ReportOutcome:
    """Apply one report as it comes (the delivery webhook, the spool of an outage), in a
    transaction of its own; one whose id matched no message and that names a phone is kept."""
    with runtime.db.transaction() as session:
        outcome = apply_delivery_report(session, provider_message_id, status, failure_reason, at=at, phone=phone)
        if outcome is ReportOutcome.UPDATED and status in FINAL:
            _observe_lag(session, provider_message_id, status, at)
    if outcome is ReportOutcome.UNKNOWN and phone:  # it may be for a send whose answer is not recorded yet
        keep(runtime.redis, provider_message_id, status, failure_reason, phone, at)
    return outcome


def _observe_lag(session: Session, provider_message_id: str, status: MessageStatus, at: datetime) -> None:
    """How long the message waited, from the provider taking it to this final report
    (``elimu_delivery_report_lag_seconds{status}``): one read by the provider id's index."""
    taken = session.scalar(select(OutboundMessage.accepted_at)
                           .where(OutboundMessage.provider_message_id == provider_message_id).limit(1))
    if taken is not None:
        taken = taken if taken.tzinfo is not None else taken.replace(tzinfo=UTC)
        DELIVERY_LAG.labels(status.value).observe(max((at - taken).total_seconds(), 0.0))


def replay(runtime: Runtime, now: datetime, limit: int = REPLAY_LIMIT) -> int:
    """Apply again up to ``limit`` of the kept reports, oldest first, each in a transaction of its
    own; keep those still unmatched and younger than ``KEEP``. The list loses the taken reports
    only once they are done: an outage part-way leaves the rest where they were (applying one
    twice changes nothing). Returns how many now changed a message."""
    entries = runtime.redis.lrange(KEY, 0, limit - 1)
    applied, again, done = 0, [], 0
    try:
        for raw in entries:
            try:
                entry = json.loads(raw)
                at = datetime.fromisoformat(entry["at"])
                report = (entry["id"], MessageStatus(entry["status"]), entry.get("reason"))
                phone = entry["phone"]
            except (ValueError, KeyError, TypeError):
                done += 1  # not a report this code wrote: dropped
                continue
            with runtime.db.transaction() as session:
                outcome = apply_delivery_report(session, *report, at=at, phone=phone)
            done += 1
            if outcome is ReportOutcome.UPDATED:
                applied += 1
            elif outcome is ReportOutcome.UNKNOWN and now - at < KEEP:
                again.append(raw)
    finally:
        if done:
            _take_done(runtime.redis, entries[:done], again)
    return applied


def _take_done(redis: redis_lib.Redis | Any, taken: list[bytes], again: list[bytes]) -> None:
    """Drop the ``taken`` reports from the head of the list and push ``again`` at its end. Reports
    kept meanwhile were pushed after them, but ``keep``'s cap may have dropped the first of them
    already: only those still at the head go (else a report never applied would go in their place)."""
    with redis.pipeline(transaction=True) as pipe:
        while True:
            try:
                pipe.watch(KEY)
                head = pipe.lrange(KEY, 0, len(taken) - 1)
                gone = next(k for k in range(len(taken) + 1) if head[:len(taken) - k] == taken[k:])
                pipe.multi()
                pipe.ltrim(KEY, len(taken) - gone, -1)
                if again:
                    pipe.rpush(KEY, *again)
                pipe.execute()
                return
            except redis_lib.WatchError:  # a report kept in between: look again
                continue
