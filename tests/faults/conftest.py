"""Fixtures of the fault suite: real Redis, real PostgreSQL (the shared server or a private one)."""

from __future__ import annotations

import os

import pytest

from tests.faults.cluster import PrivateCluster, available
from tests.sms.conftest import at_runtime, fake_at, quick_retries, sms_runtime  # noqa: F401


@pytest.fixture(scope="session")
def private_pg():
    reason = available()
    if reason:
        if os.environ.get("CI") or os.environ.get("ELIMU_REQUIRE_SERVICES"):
            pytest.fail(reason, pytrace=False)
        pytest.skip(reason)
    cluster = PrivateCluster()
    cluster.start()
    yield cluster
    cluster.destroy()
