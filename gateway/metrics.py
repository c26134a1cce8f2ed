"""Prometheus metrics, safe under gunicorn's several processes.

With ``PROMETHEUS_MULTIPROC_DIR`` set (gunicorn.conf.py does it) every process writes its samples
to that folder and ``/metrics`` merges them; without it (embedded mode, tests) the default registry
of this process is served.
"""

from __future__ import annotations

import os

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

from registry.signals import audit_event, otp_event

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
DELIVERY_REPORTS = Counter("elimu_delivery_reports", "Delivery reports received", ["status"])
INBOUND_COMMANDS = Counter("elimu_inbound_commands", "Inbound SMS by command", ["command"])
RATE_LIMITED = Counter("elimu_rate_limited", "Requests refused by a rate limit", ["limit"])
CALLBACKS_REFUSED = Counter("elimu_callbacks_refused", "Provider callbacks refused at the edge", ["reason"])
# Counted where the row is written: USSD's (PIN choices, activation misses) by the web, SMS results'
# (replies, misses, refusals) by the workers; ``action`` is one of the names the code fixes.
AUDIT_EVENTS = Counter("elimu_audit_events", "Audit trail rows committed, by action", ["action"])

def _count_otp(event: str, **_: object) -> None:
    OTP_EVENTS.labels(event).inc()


def _count_audit(action: str, count: int = 1, **_: object) -> None:
    AUDIT_EVENTS.labels(action).inc(count)


otp_event.connect(_count_otp, weak=False)
audit_event.connect(_count_audit, weak=False)

QUEUES = ("sms-otp", "sms-reply", "sms-bulk", "sms-inbound")


class QueueDepthCollector:
    """Reads the RQ queue lengths from Redis at scrape time."""

    def __init__(self, redis_client) -> None:
        self.redis = redis_client

    def collect(self):
        family = GaugeMetricFamily("elimu_queue_depth", "Jobs waiting in each RQ queue", labels=["queue"])
        try:
            pipe = self.redis.pipeline(transaction=False)
            for name in QUEUES:
                pipe.llen(f"rq:queue:{name}")
            for name, depth in zip(QUEUES, pipe.execute(), strict=True):
                family.add_metric([name], float(depth))
        except Exception:  # noqa: BLE001 - a scrape must not fail because Redis is down
            pass
        yield family


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
    extra.register(QueueDepthCollector(runtime.redis))
    output += generate_latest(extra)
    # content_type, not mimetype: werkzeug would add a second charset to the library's own, and a
    # media type with a repeated parameter is refused by Go's parser, so by Prometheus' scrapes
    return Response(output, content_type=CONTENT_TYPE_LATEST)
