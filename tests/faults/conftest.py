"""Fixtures of the fault suite: real Redis, real PostgreSQL (the shared server or a private one)."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time

import pytest
import redis

from tests.conftest import missing
from tests.faults.cluster import PrivateCluster, available
from tests.sms.conftest import at_runtime, fake_at, quick_retries, sms_runtime  # noqa: F401


@pytest.fixture(scope="session")
def private_pg():
    reason = available()
    if reason:
        missing(reason)
    cluster = PrivateCluster()
    cluster.start()
    yield cluster
    cluster.destroy()


@pytest.fixture
def private_redis(tmp_path):
    """A Redis server of this test alone, so FLUSHALL hits nobody else: (client, url)."""
    if not shutil.which("redis-server"):
        missing("redis-server is not installed")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                             "--appendonly", "no", "--dir", str(tmp_path)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"redis://127.0.0.1:{port}/0"
    client = redis.Redis.from_url(url)
    deadline = time.time() + 10
    while True:
        try:
            client.ping()
            break
        except redis.ConnectionError:
            if time.time() > deadline:
                proc.kill()
                raise
            time.sleep(0.05)
    yield client, url
    client.close()
    proc.terminate()
    proc.wait(10)
