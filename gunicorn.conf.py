"""gunicorn settings for production: ``elimu serve --config gunicorn.conf.py``, which checks the
environment (gunicorn reads WEB_CONCURRENCY before this file) and becomes
``gunicorn -c gunicorn.conf.py wsgi:app``.

Environment overrides: ELIMU_BIND, WEB_CONCURRENCY (processes; always one without REDIS_URL), ELIMU_THREADS.
Prometheus metrics are merged across processes through PROMETHEUS_MULTIPROC_DIR.
"""

import os
import shutil
import tempfile

# before anything imports prometheus_client, which reads it once
_shm = "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) else None
_metrics_dir = os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR",
                                     os.path.join(_shm or tempfile.gettempdir(), "elimu-metrics"))

from gateway.heap import post_worker_init  # noqa: E402, F401 - the hook: the app's start-up objects frozen
from gateway.logs import ACCESS_LOG_FORMAT  # noqa: E402 - after the line above


def _count(name: str, default: int) -> int:
    """A whole number from 1 in the environment; a bad one stops gunicorn with one line naming it."""
    raw = (os.environ.get(name) or str(default)).strip()
    if not raw.isdigit() or int(raw) < 1:
        raise SystemExit(f"Error: {name} must be a whole number from 1, not {raw!r}")
    return int(raw)


bind = os.environ.get("ELIMU_BIND", "127.0.0.1:8000")
workers = _count("WEB_CONCURRENCY", (os.cpu_count() or 1) * 2 + 1)
# Without REDIS_URL (or Sentinels) each process would hold its own in-process Redis, so a session's
# hops landing on two processes would each find the other's session missing: one process then,
# whatever WEB_CONCURRENCY or --workers say (``on_starting``).
embedded_redis = not (os.environ.get("REDIS_URL") or os.environ.get("ELIMU_REDIS_SENTINELS"))
threads = _count("ELIMU_THREADS", 4)
worker_class = "gthread"
timeout = 30  # a USSD hop must answer within AT's 10 s; anything near 30 s is a stuck worker
graceful_timeout = 20
keepalive = 5
# The heartbeat file every worker touches on each pass of its loop, and the metrics files below, on
# tmpfs when there is one (gunicorn's advice): on a disk-backed /tmp each touch is a journaled write.
worker_tmp_dir = _shm
# A worker is recycled (a bound on any slow leak) after this many requests. A new one spends about
# 0.6 s of CPU importing the app and then warms its caches: after 20,000 requests, as before, that
# was 4-5 % more CPU at results-day rates (a restart a minute per worker); RSS grew by about 1 MiB
# per 7,000 requests in the bench, so 200,000 keeps a worker well under 120 MiB.
max_requests = 200000
max_requests_jitter = 20000
accesslog = "-"
access_log_format = ACCESS_LOG_FORMAT  # the path without its query string (gateway.logs)
proc_name = "elimu-web"



def on_starting(server):
    shutil.rmtree(_metrics_dir, ignore_errors=True)
    os.makedirs(_metrics_dir, exist_ok=True)
    if embedded_redis and server.num_workers > 1:
        server.log.warning("REDIS_URL is unset: one process, not %d, with the embedded Redis and SMS worker "
                           "(set REDIS_URL for more; see docs/deploy.md)", server.num_workers)
        server.num_workers = 1


def on_reload(server):
    """A reload (HUP: ``systemctl reload elimu-web``) reads this file again and starts ``workers``
    processes, ``on_starting`` not called: one, as at start, on the embedded Redis."""
    if embedded_redis and server.cfg.workers > 1:
        server.cfg.set("workers", 1)
        server.num_workers = 1


def child_exit(server, worker):
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)
