"""A worker's exit does not wait on RQ's pubsub thread (redis-py 8 made ``PubSubWorkerThread.stop()``
wait for the thread; after RQ 3's unsubscribe-then-stop, a thread that had read the UNSUBSCRIBE's
answer went back to sleep for up to 60 s, so ``elimu worker --burst`` sometimes took a minute)."""

from __future__ import annotations

import threading

import pytest

from workers.worker import SmsWorker

pytestmark = pytest.mark.redis


def _listening_worker(redis) -> SmsWorker:
    worker = SmsWorker(["sms-otp"], connection=redis)
    worker.subscribe()
    assert worker.pubsub.subscribed
    return worker


def test_the_thread_is_stopped_before_the_unsubscribe_that_wakes_it(real_redis, monkeypatch):
    worker = _listening_worker(real_redis)
    calls = []
    thread = worker.pubsub_thread
    stop, unsubscribe = thread.stop, worker.pubsub.unsubscribe
    monkeypatch.setattr(thread, "stop", lambda *a, **k: calls.append("stop") or stop(*a, **k))
    monkeypatch.setattr(worker.pubsub, "unsubscribe", lambda *a, **k: calls.append("unsubscribe") or unsubscribe(*a, **k))
    worker.unsubscribe()
    assert calls == ["stop", "unsubscribe"]
    assert not thread.is_alive()


def test_every_unsubscribe_leaves_no_listening_thread(real_redis):
    """Many times over, as the race needs (real Redis: the thread reads the answers off the socket)."""
    for _ in range(30):
        worker = _listening_worker(real_redis)
        done = threading.Event()
        runner = threading.Thread(target=lambda w=worker, d=done: (w.unsubscribe(), d.set()), daemon=True)
        runner.start()
        assert done.wait(10), "unsubscribe waited on the pubsub thread"
        assert not worker.pubsub_thread.is_alive()
