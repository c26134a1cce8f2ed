"""Fixtures of the fault suite: real Redis, real PostgreSQL (the shared server or a private one)."""

from __future__ import annotations

import pytest
import redis

from tests import redis_servers
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
    proc, port = redis_servers.start(lambda port: ["--port", str(port), "--bind", "127.0.0.1", "--save", "",
                                                   "--appendonly", "no", "--dir", str(tmp_path)])
    url = f"redis://127.0.0.1:{port}/0"
    client = redis.Redis.from_url(url)
    yield client, url
    client.close()
    redis_servers.stop(proc)
