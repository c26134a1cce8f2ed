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
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from registry.models import MessageStatus
from registry.services.sms_delivery import ReportOutcome, apply_delivery_report

if TYPE_CHECKING:
    import redis as redis_lib

    from gateway.runtime import Runtime

log = logging.getLogger(__name__)

KEY = "elimu:sms:unmatched-reports"
KEEP = timedelta(minutes=5)
MAX_KEPT = 5_000


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


def replay(runtime: Runtime, now: datetime) -> int:
    """Apply the kept reports again, in one transaction; keep those still unmatched and younger
    than ``KEEP``. Returns how many now applied."""
    pipe = runtime.redis.pipeline(transaction=True)
    pipe.lrange(KEY, 0, -1)
    pipe.delete(KEY)
    entries, _ = pipe.execute()
    if not entries:
        return 0
    applied, again = 0, []
    with runtime.db.transaction() as session:
        for raw in entries:
            try:
                entry = json.loads(raw)
                at = datetime.fromisoformat(entry["at"])
                status = MessageStatus(entry["status"])
            except (ValueError, KeyError, TypeError):
                continue
            outcome = apply_delivery_report(session, entry["id"], status, entry["reason"], at=at, phone=entry["phone"])
            if outcome is not ReportOutcome.UNKNOWN:
                applied += 1
            elif now - at < KEEP:
                again.append(raw)
    if again:
        runtime.redis.rpush(KEY, *again)
    return applied
