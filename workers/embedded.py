"""The in-process SMS worker of embedded mode (``REDIS_URL`` unset): ``make run`` sends SMS with no
other process. A daemon thread runs the same worker as ``elimu worker`` on the embedded Redis,
beside a housekeeping thread for retries and the reconciler."""

from __future__ import annotations

import logging
import threading
from datetime import timedelta
from typing import TYPE_CHECKING

from .context import queues_of, use_runtime
from .worker import Housekeeper, SmsWorker, build_worker

if TYPE_CHECKING:
    from gateway.runtime import Runtime

log = logging.getLogger(__name__)

WORKER_TTL = 60  # seconds (RQ's heartbeat); the idle worker blocks worker_ttl - 15 s per poll
# This is the only worker of the embedded Redis, and ``elimu`` commands run in other processes
# (each with a Redis of its own) leave their messages queued in the shared database: reconcile
# often and soon so those go out within seconds.
RECONCILE_EVERY = 10.0
GRACE = timedelta(seconds=10)

_started: dict[int, EmbeddedWorker] = {}
_lock = threading.Lock()


class EmbeddedWorker:
    def __init__(self, runtime: Runtime, worker_ttl: int = WORKER_TTL) -> None:
        self.runtime = runtime
        self.worker: SmsWorker | None = None
        self.worker_ttl = worker_ttl
        self.keeper = Housekeeper(runtime, reconcile_every=RECONCILE_EVERY, grace=GRACE)
        self.thread = threading.Thread(target=self._run, name="elimu-sms-worker", daemon=True)
        self._ready = threading.Event()

    def start(self) -> EmbeddedWorker:
        self.thread.start()
        self.keeper.start()
        self._ready.wait(10)
        return self

    def _run(self) -> None:
        try:
            self.worker = build_worker(self.runtime, worker_ttl=self.worker_ttl)
        finally:
            self._ready.set()
        self.worker.work(logging_level="WARNING")

    def stop(self, timeout: float | None = None) -> None:
        """Stop after the current job: flag the worker, then wake it with a no-op job (a waiting
        RQ worker only looks at its stop flag between jobs)."""
        self.keeper.stop()
        if self.worker is not None:
            self.worker._stop_requested = True
            from .jobs import wake

            queues_of(self.runtime).ordered()[0].enqueue_call(wake, result_ttl=0, description="wake the worker")
        self.thread.join(timeout)


def start_embedded_worker(runtime: Runtime) -> EmbeddedWorker:
    """Start the worker threads for ``runtime`` (once per runtime; later calls return the first)."""
    with _lock:
        running = _started.get(id(runtime))
        if running is not None:
            return running
        use_runtime(runtime)
        running = _started[id(runtime)] = EmbeddedWorker(runtime).start()
        log.info("embedded SMS worker started")
        return running
