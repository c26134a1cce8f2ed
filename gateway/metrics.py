"""Prometheus metrics, safe under gunicorn's several processes.

With ``PROMETHEUS_MULTIPROC_DIR`` set (gunicorn.conf.py does it) every process writes its samples
to that folder and ``/metrics`` merges them; without it (embedded mode, tests) the default registry
of this process is served.
"""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime

from flask import Blueprint, Response, current_app
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
)
from prometheus_client.core import GaugeMetricFamily

from registry.signals import audit_event, limit_event, otp_event

bp = Blueprint("metrics", __name__)

USSD_HOPS = Counter("elimu_ussd_hops", "USSD hops answered", ["screen", "outcome"])
USSD_HOP_SECONDS = Histogram(
    "elimu_ussd_hop_seconds",
    "Time to answer one USSD hop",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
)
OTP_EVENTS = Counter("elimu_otp", "One-time codes by event", ["event"])  # sent | verified | failed
SMS_MESSAGES = Counter("elimu_sms_messages", "Outbound SMS state changes", ["kind", "status"])
# Counted by the workers: why a send was not taken (AT's status, or ``timeout``, ``connection``, ...:
# ``workers.backends.africastalking.error_label``) and what became of it (retry, failed, unconfirmed).
SMS_SEND_ERRORS = Counter("elimu_sms_send_errors", "SMS sends not taken by the provider, by why", ["error", "outcome"])
# Counted by whoever runs the reconciler (each worker, once a minute; ``elimu sms reconcile``).
RECONCILED = Counter("elimu_reconciled", "What the reconciler put right, by kind", ["action"])
RECONCILER_PASSES = Counter("elimu_reconciler_passes", "Reconciler passes: done, locked (another ran), failed",
                            ["result"])
# ``gateway.degraded``: answer busy (a USSD END), retry_later (503 for AT to retry), spooled (taken,
# applied when the database is back), unavailable (any other path); cause database, redis, outage, error.
DEGRADED_ANSWERS = Counter("elimu_degraded_answers", "Requests answered without their work, by answer and cause",
                           ["answer", "cause"])
# From AT taking a message (its ``accepted_at``) to the report that settles it, by the status it settles:
# delivered, failed, rejected, expired (``workers.reports.apply``: the web's callback and its spool).
DELIVERY_LAG = Histogram(
    "elimu_delivery_report_lag_seconds", "Time from the provider taking a message to its final delivery report",
    ["status"], buckets=(1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, 4 * 3600, 12 * 3600),
)
DELIVERY_REPORTS = Counter("elimu_delivery_reports", "Delivery reports received", ["status"])
INBOUND_COMMANDS = Counter("elimu_inbound_commands", "Inbound SMS by command", ["command"])
RATE_LIMITED = Counter("elimu_rate_limited", "Requests refused by a rate limit", ["limit"])
CALLBACKS_REFUSED = Counter("elimu_callbacks_refused", "Provider callbacks refused at the edge", ["reason"])
# A callback answered 400 (a field missing or unreadable, a body not UTF-8 or cut short): bound once,
# for the USSD routes and the fast path (``labels`` checks and locks on every call)
CALLBACKS_MALFORMED = CALLBACKS_REFUSED.labels("malformed")
# A callback answered 413 (a body over ELIMU_MAX_BODY_BYTES), by the fast path or by Flask: bound once too
CALLBACKS_TOO_LARGE = CALLBACKS_REFUSED.labels("too_large")
# Counted where the row is written: USSD's (PIN choices, activation misses) by the web, SMS results'
# (replies, misses, refusals) by the workers; ``action`` is one of the names the code fixes.
AUDIT_EVENTS = Counter("elimu_audit_events", "Audit trail rows committed, by action", ["action"])

def _count_otp(event: str, **_: object) -> None:
    OTP_EVENTS.labels(event).inc()


def _count_audit(action: str, count: int = 1, **_: object) -> None:
    AUDIT_EVENTS.labels(action).inc(count)


def _count_limit(limit: str, **_: object) -> None:
    RATE_LIMITED.labels(limit).inc()


otp_event.connect(_count_otp, weak=False)
limit_event.connect(_count_limit, weak=False)
audit_event.connect(_count_audit, weak=False)

QUEUES = ("sms-otp", "sms-reply", "sms-bulk", "sms-inbound")


class QueueDepthCollector:
    """What waits, read at scrape time (so the same under gunicorn's processes as in one): each RQ
    queue's jobs and the age of its oldest, the inbound texts handed to the drains and not yet
    taken, and, given the database, how late the oldest outbound message due and the oldest
    inbound text unanswered are; ``elimu_up`` says whether Redis and the database answered."""

    HEAD = 5  # jobs read at each queue's head: one a worker batched away leaves its id behind

    def __init__(self, redis_client, db=None) -> None:
        self.redis = redis_client
        self.db = db

    def collect(self):
        depth = GaugeMetricFamily("elimu_queue_depth", "Jobs waiting in each RQ queue", labels=["queue"])
        oldest = GaugeMetricFamily("elimu_queue_oldest_seconds", "Age of the oldest job waiting in each RQ queue "
                                   "(0: none waiting)", labels=["queue"])
        inbound = GaugeMetricFamily("elimu_inbound_waiting", "Inbound texts handed to the drains, not yet taken")
        outbox_lag = GaugeMetricFamily("elimu_outbox_lag_seconds", "How long the oldest outbound message due has "
                                       "waited to be sent (0: none)")
        inbound_lag = GaugeMetricFamily("elimu_inbound_lag_seconds", "How long the oldest inbound text not yet "
                                        "answered has waited (0: none)")
        up = GaugeMetricFamily("elimu_up", "Whether Redis and the database answered this scrape", labels=["dependency"])
        now = time.time()
        try:
            self._redis(depth, oldest, inbound, now)
            up.add_metric(["redis"], 1.0)
        except Exception:  # noqa: BLE001 - a scrape must not fail because Redis is down
            up.add_metric(["redis"], 0.0)
        if self.db is not None:
            try:
                self._database(outbox_lag, inbound_lag, now)
                up.add_metric(["database"], 1.0)
            except Exception:  # noqa: BLE001 - nor because the database is
                up.add_metric(["database"], 0.0)
        yield from (depth, oldest, inbound, outbox_lag, inbound_lag, up)

    def _redis(self, depth: GaugeMetricFamily, oldest: GaugeMetricFamily, inbound: GaugeMetricFamily,
               now: float) -> None:
        from workers.inbound import PENDING_KEY

        pipe = self.redis.pipeline(transaction=False)
        for name in QUEUES:
            pipe.llen(f"rq:queue:{name}")
            pipe.lrange(f"rq:queue:{name}", 0, self.HEAD - 1)
        pipe.llen(PENDING_KEY)
        answers = pipe.execute()
        heads = {name: answers[2 * i + 1] for i, name in enumerate(QUEUES)}
        pipe = self.redis.pipeline(transaction=False)
        for ids in heads.values():
            for job_id in ids:
                pipe.hget(b"rq:job:" + job_id, "enqueued_at")
        times = iter(pipe.execute())
        for i, name in enumerate(QUEUES):
            depth.add_metric([name], float(answers[2 * i]))
            first = next((t for t in [next(times) for _ in heads[name]] if t), None)
            oldest.add_metric([name], _age(first, now))
        inbound.add_metric([], float(answers[-1]))

    def _database(self, outbox_lag: GaugeMetricFamily, inbound_lag: GaugeMetricFamily, now: float) -> None:
        with self.db.autocommit() as connection:
            first_due, first_unanswered = connection.execute(lag_statement()).one()
        outbox_lag.add_metric([], _age(first_due, now))
        inbound_lag.add_metric([], _age(first_unanswered, now))


def lag_statement():
    """The first time of two partial indexes: the oldest due of the queued outbound messages
    (``ix_outbound_messages_due``) and the oldest unanswered inbound text (``..._unhandled``). The
    status is written into the SQL, as the index's condition is, so a generic plan uses it too."""
    from sqlalchemy import func, literal_column, select

    from registry.models import InboundMessage, MessageStatus, OutboundMessage

    queued = OutboundMessage.status == literal_column(f"'{MessageStatus.QUEUED.value}'")
    due = select(func.min(OutboundMessage.next_attempt_at)).where(queued)
    unanswered = select(func.min(InboundMessage.created_at)).where(InboundMessage.handled_at.is_(None))
    return select(due.scalar_subquery(), unanswered.scalar_subquery())


def _age(moment: datetime | bytes | str | None, now: float) -> float:
    """Seconds from ``moment`` (a time, or RQ's ISO text of one; naive means UTC) to ``now``; 0 for
    none, or one still to come."""
    if moment is None:
        return 0.0
    if isinstance(moment, bytes):
        moment = moment.decode()
    if isinstance(moment, str):
        try:
            moment = datetime.fromisoformat(moment)
        except ValueError:
            return 0.0
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return max(now - moment.timestamp(), 0.0)


def _registry() -> CollectorRegistry:
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return registry
    return REGISTRY


@bp.get("/metrics")
def metrics() -> Response:
    registry = _registry()
    output = generate_latest(registry)
    runtime = current_app.extensions["elimu"]
    extra = CollectorRegistry()
    extra.register(QueueDepthCollector(runtime.redis, runtime.db))
    output += generate_latest(extra)
    # content_type, not mimetype: werkzeug would add a second charset to the library's own, and a
    # media type with a repeated parameter is refused by Go's parser, so by Prometheus' scrapes
    return Response(output, content_type=CONTENT_TYPE_LATEST)
