"""The runtime the SMS jobs of this process use, and the per-runtime SMS services built once.

RQ calls jobs by import path with plain arguments, so a job finds the database, Redis and the SMS
backend here: the worker (``elimu worker``, the embedded thread, a test) installs its runtime with
:func:`use_runtime`; a process that never did builds one from the environment on first use.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from gateway.runtime import Runtime

    from .backends import Backend
    from .queues import Queues
    from .throttle import Throttle

_runtime: Runtime | None = None
_lock = threading.RLock()  # building a backend builds its throttle under the same lock


def use_runtime(runtime: Runtime | None) -> None:
    """Make ``runtime`` the one jobs of this process use (None forgets it)."""
    global _runtime
    with _lock:
        _runtime = runtime


def current_runtime() -> Runtime:
    global _runtime
    with _lock:
        if _runtime is None:
            from gateway.config import Settings
            from gateway.runtime import Runtime

            _runtime = Runtime.build(Settings.from_env())
        return _runtime


def _cached(runtime: Runtime, key: str, build):
    value = runtime.extras.get(key)
    if value is None:
        with _lock:
            value = runtime.extras.get(key)
            if value is None:
                value = runtime.extras[key] = build()
    return value


def queues_of(runtime: Runtime) -> Queues:
    from .queues import Queues

    return _cached(runtime, "sms.queues", lambda: Queues(runtime.redis))


def throttle_of(runtime: Runtime) -> Throttle:
    from .throttle import Throttle

    return _cached(runtime, "sms.throttle", lambda: Throttle(
        runtime.redis, runtime.settings.sms_backend, runtime.settings.sms_rate_per_second))


def backend_of(runtime: Runtime) -> Backend:
    """The SMS backend of SMS_BACKEND, built once per runtime (the AT SDK service once per process)."""
    from .backends import build_backend

    return _cached(runtime, "sms.backend", lambda: build_backend(runtime))
