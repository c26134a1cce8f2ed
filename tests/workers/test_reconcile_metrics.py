"""elimu_reconciled_total{action} and elimu_reconciler_passes_total{result}: what the reconciler put
right, and whether it runs at all (each worker's --metrics-port)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from prometheus_client import REGISTRY

from registry.models import MessageKind, MessageStatus, OutboundMessage, utcnow
from registry.outbox import queue_sms
from workers.reconcile import LOCK_KEY, reconcile

LATER = timedelta(hours=1)


def value(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_messages_enqueued_again_after_a_redis_flush_are_counted(sms_runtime):
    with sms_runtime.db.transaction() as session:
        for n in range(3):
            queue_sms(session, f"+25471100010{n}", MessageKind.NOTICE, "Notice")
    sms_runtime.redis.flushdb()
    before = value("elimu_reconciled_total", action="enqueued"), value("elimu_reconciler_passes_total", result="done")
    reconcile(sms_runtime, now=utcnow() + LATER)
    after = value("elimu_reconciled_total", action="enqueued"), value("elimu_reconciler_passes_total", result="done")
    assert (after[0] - before[0], after[1] - before[1]) == (3, 1)


def test_a_lost_workers_messages_are_counted_reclaimed(sms_runtime):
    with sms_runtime.db.transaction() as session:
        message = queue_sms(session, "+254711000110", MessageKind.NOTICE, "Notice")
        session.flush()
        session.get(OutboundMessage, message.id).status = MessageStatus.SUBMITTED
        session.get(OutboundMessage, message.id).submitted_at = utcnow() - LATER
    before = value("elimu_reconciled_total", action="reclaimed")
    assert reconcile(sms_runtime).reclaimed == 1
    assert value("elimu_reconciled_total", action="reclaimed") - before == 1


def test_a_pass_another_reconciler_holds_and_a_failed_one_are_counted(sms_runtime, monkeypatch):
    sms_runtime.redis.set(LOCK_KEY, "another")
    before = value("elimu_reconciler_passes_total", result="locked")
    assert reconcile(sms_runtime).locked
    assert value("elimu_reconciler_passes_total", result="locked") - before == 1
    sms_runtime.redis.delete(LOCK_KEY)

    def down(*_args, **_kwargs):
        raise ConnectionError("database away")

    monkeypatch.setattr("workers.reconcile.record_kept", down)
    before = value("elimu_reconciler_passes_total", result="failed")
    with pytest.raises(ConnectionError):
        reconcile(sms_runtime)
    assert value("elimu_reconciler_passes_total", result="failed") - before == 1
