"""A ``redis-server`` of a test's own (plain or Sentinel) on a free port, known to be that very process.

A port found free and closed again can be taken by anything before the server binds it (the other
xdist worker starting a server of its own, say). The server then fails to start, and a readiness
probe that only connects would take whoever holds the port for it: a test's FLUSHALL would hit
another test's server. Here the server must answer ``INFO`` with its own process id; one that cannot
bind is started again on another port.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Callable, Iterator

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from tests.conftest import missing

ATTEMPTS = 5
START_S = 30.0


def free_ports() -> Iterator[int]:
    """Ports the kernel calls free now (a guess that ``start`` checks)."""
    while True:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        yield port  # closed first: a suspended generator must not hold the port


def start(arguments: Callable[[int], list[str]], ports: Iterator[int] | None = None) -> tuple[subprocess.Popen, int]:
    """``redis-server ARGUMENTS(port)`` answering on ``port`` as itself: (process, port)."""
    if not shutil.which("redis-server"):
        missing("redis-server is not installed")
    ports = ports or free_ports()
    tried = []
    for _, port in zip(range(ATTEMPTS), ports, strict=False):
        proc = subprocess.Popen(["redis-server", *arguments(port)], stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        if _answers_as(proc, port):
            return proc, port
        proc.kill()
        proc.wait()
        tried.append(port)
    raise AssertionError(f"redis-server did not start as itself on any of the ports {tried}")


def _answers_as(proc: subprocess.Popen, port: int) -> bool:
    """Until ``proc`` answers on ``port`` (True), exits (False: it could not bind) or takes too long."""
    # one try per probe (redis-py's default retries a silent holder of the port ten times over)
    client = redis.Redis(host="127.0.0.1", port=port, socket_connect_timeout=1, socket_timeout=1,
                         retry=Retry(NoBackoff(), 0))
    deadline = time.monotonic() + START_S
    try:
        while proc.poll() is None and time.monotonic() < deadline:
            try:
                if client.info("server")["process_id"] == proc.pid:
                    return True
            except redis.RedisError:
                pass
            time.sleep(0.05)
        return False
    finally:
        client.close()


def stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
