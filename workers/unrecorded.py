"""Send results the database could not take when they came back (an outage, a restart).

Their messages are ``submitted`` without ``accepted_at``, the state of a send whose worker died:
once the lease runs out the reconciler would send them again, and a premium reply would be
charged twice. So the results are kept in Redis (one hash field per message, its attempt number
with it) until recorded: by the sending worker, which retries for a while, or by the reconciler,
which records what is kept here before it reclaims any lease.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING

from sqlalchemy import select

from registry.arrays import among
from registry.models import MessageStatus, OutboundMessage
from registry.outbox import Claimed

from .backends import Outcome, SendResult

if TYPE_CHECKING:
    from gateway.runtime import Runtime

    from .sending import Summary

log = logging.getLogger(__name__)

KEY = "elimu:sms:unrecorded"  # message id -> {"attempts": n, "result": {...}}
MAX_PER_PASS = 5_000


def keep(runtime: Runtime, claimed: Sequence[Claimed], results: Sequence[SendResult]) -> bool:
    """Keep ``results`` (of ``claimed``, this attempt of each) in Redis; False if Redis failed too."""
    attempts = {c.id: c.attempts for c in claimed}
    fields = {
        str(r.message_id): json.dumps({"attempts": attempts[r.message_id], "result": _plain(r)})
        for r in results if r.message_id in attempts
    }
    if not fields:
        return True
    try:
        runtime.redis.hset(KEY, mapping=fields)
    except Exception as exc:  # noqa: BLE001 - reported by the caller's log line
        log.error("send results could not be kept in Redis either (%s)", type(exc).__name__)
        return False
    return True


def forget(runtime: Runtime, message_ids: Sequence[int]) -> None:
    """Drop kept results once recorded (best effort: a leftover is ignored, see ``record_kept``)."""
    try:
        runtime.redis.hdel(KEY, *(str(i) for i in message_ids))
    except Exception as exc:  # noqa: BLE001
        log.info("kept send results not dropped (%s); the reconciler drops them", type(exc).__name__)


def record_kept(runtime: Runtime) -> Summary:
    """Record the kept results whose messages are still at the attempt they were kept for
    (``submitted``, never accepted), and drop every kept result read."""
    from .sending import Summary, record

    summary = Summary()
    raw = runtime.redis.hgetall(KEY)
    if not raw:
        return summary
    kept: dict[int, tuple[int, SendResult]] = {}
    for name, value in list(raw.items())[:MAX_PER_PASS]:
        try:
            entry = json.loads(value)
            kept[int(name)] = (int(entry["attempts"]), _result(int(name), entry["result"]))
        except (ValueError, KeyError, TypeError):
            log.error("a kept send result could not be read; dropped")
    t = OutboundMessage
    with runtime.db.transaction() as session:
        rows = session.execute(
            select(t.id, t.recipient, t.body, t.kind, t.link_id, t.attempts, t.priority, t.announcement_id)
            .where(among(session, t.id, sorted(kept)), t.status == MessageStatus.SUBMITTED, t.accepted_at.is_(None))
        ).all()
        claimed = [Claimed(r.id, r.recipient, r.body, str(r.kind), r.link_id, r.attempts, str(r.priority),
                           r.announcement_id) for r in rows if r.attempts == kept[r.id][0]]
        record(session, claimed, [kept[c.id][1] for c in claimed], summary)
    runtime.redis.hdel(KEY, *(name for name in list(raw)[:MAX_PER_PASS]))
    if claimed:
        log.warning("recorded %d send results kept while the database was away", len(claimed))
    return summary


def _plain(result: SendResult) -> dict[str, object]:
    return {"outcome": result.outcome.value, "provider_message_id": result.provider_message_id,
            "status_code": result.status_code, "cost": result.cost, "reason": result.reason}


def _result(message_id: int, plain: dict[str, object]) -> SendResult:
    return SendResult(message_id, Outcome(plain["outcome"]), plain.get("provider_message_id"),  # type: ignore[arg-type]
                      plain.get("status_code"), plain.get("cost"), plain.get("reason"))  # type: ignore[arg-type]
