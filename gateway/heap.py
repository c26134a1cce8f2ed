"""The Python heap of a long-running process: its start-up objects kept out of the collector's way.

A web or worker process imports the app and builds it once: about 130,000 objects (modules,
functions, classes, SQLAlchemy's and Flask's tables) that live as long as it does. Python's
cyclic collector walks every one of them in each full collection, which comes round every few tens
of thousands of allocations under load and holds the GIL for 30-70 ms: every thread of the process
waits, and the wait lands on whichever hops are in flight (B1's p99). ``gc.freeze`` moves them into
a generation the collector never walks, as the ``gc`` documentation advises for long-lived servers.
Objects made later are collected as before.
"""

from __future__ import annotations

import gc


def freeze_start_up_objects() -> int:
    """Collect what start-up left as garbage, then freeze the survivors; returns how many were frozen."""
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()


def post_worker_init(_worker: object) -> None:
    """gunicorn's hook once a worker has loaded the app (gunicorn.conf.py, ``elimu serve``)."""
    freeze_start_up_objects()
