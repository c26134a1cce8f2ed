"""The reconciler's Redis lock, on a real Redis and PostgreSQL: a pass that outlived it."""

from __future__ import annotations

import pytest

from workers import reconcile as reconcile_module
from workers.reconcile import LOCK_KEY, reconcile

pytestmark = [pytest.mark.postgres, pytest.mark.redis]


def test_a_pass_that_outlived_its_lock_leaves_the_next_reconcilers_lock(integration_runtime, monkeypatch):
    """A slow pass (a slow database: up to 1,000 kept reports each in a transaction of its own) whose
    lock expired while another worker's reconciler took it must not delete that one's lock when it
    ends: a third would start beside the second (two replays of the kept reports trim each other's)."""
    redis = integration_runtime.redis
    real = reconcile_module.hand_over_stale

    def meanwhile(runtime, cutoff):
        assert redis.exists(LOCK_KEY)
        redis.delete(LOCK_KEY)  # this pass's lock expired (EX 120) ...
        assert redis.set(LOCK_KEY, "next", nx=True, ex=120)  # ... and the next reconciler took it
        return real(runtime, cutoff)

    monkeypatch.setattr(reconcile_module, "hand_over_stale", meanwhile)
    assert not reconcile(integration_runtime).locked
    assert redis.get(LOCK_KEY) == b"next"


def test_a_pass_frees_its_own_lock(integration_runtime):
    assert not reconcile(integration_runtime).locked
    assert not integration_runtime.redis.exists(LOCK_KEY)
