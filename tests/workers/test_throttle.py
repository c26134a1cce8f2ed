"""The send-rate limit shared by all workers (GCRA in Redis)."""

from __future__ import annotations

import threading
import time

import fakeredis
import pytest

from workers.throttle import Throttle


@pytest.fixture
def redis():
    return fakeredis.FakeRedis(server=fakeredis.FakeServer())


def test_a_burst_goes_at_once_then_sends_are_spaced_by_the_rate(redis):
    throttle = Throttle(redis, "africastalking", rate_per_second=1.0, burst_seconds=1.0)
    assert throttle.reserve(5) == 0  # idle: the first batch goes now
    wait = throttle.reserve(1)  # five seconds' worth booked, one of slack
    assert 3.0 < wait <= 4.0
    assert throttle.reserve(1) > wait


def test_the_schedule_is_shared_through_redis(redis):
    first = Throttle(redis, "africastalking", rate_per_second=2.0, burst_seconds=0.0)
    second = Throttle(redis, "africastalking", rate_per_second=2.0, burst_seconds=0.0)
    assert first.reserve(10) == 0
    assert second.reserve(1) > 4.0  # the other worker's 10 messages come first


def test_providers_have_separate_limits(redis):
    Throttle(redis, "africastalking", 1.0, 0.0).reserve(100)
    assert Throttle(redis, "other", 1.0, 0.0).reserve(1) == 0


def test_concurrent_reservations_are_never_lost(redis):
    throttle = Throttle(redis, "africastalking", rate_per_second=1.0, burst_seconds=0.0)
    throttle.reserve(1)
    booked_until = float(redis.get(throttle.key))

    def book():
        for _ in range(25):
            throttle.reserve(1)

    threads = [threading.Thread(target=book) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # every one of the 100 reservations moved the schedule on by one second: none overwrote another
    assert float(redis.get(throttle.key)) == booked_until + 100


def test_acquire_sleeps_the_wait(redis):
    slept: list[float] = []
    throttle = Throttle(redis, "africastalking", 1.0, 0.0, sleep=slept.append)
    throttle.acquire(3)
    throttle.acquire(1)
    assert slept and 2.0 < slept[0] <= 3.0


def test_a_zero_rate_means_no_limit(redis):
    throttle = Throttle(redis, "africastalking", 0)
    assert throttle.unlimited and throttle.reserve(10_000) == 0 and redis.keys() == []


def test_a_schedule_books_like_reserve_called_in_turn(redis, monkeypatch):
    # Redis's clock (fakeredis reads time.time) held still: the reserves called one after the other
    # would otherwise each wait less by the time the ones before took (failing on a loaded host)
    monkeypatch.setattr(time, "time", lambda: 1_800_000_000.0)
    one = Throttle(redis, "one", rate_per_second=2.0, burst_seconds=1.0)
    other = Throttle(redis, "other", rate_per_second=2.0, burst_seconds=1.0)
    counts = [1, 3, 2, 1, 4]
    waits = one.schedule(counts)
    assert waits == [other.reserve(count) for count in counts]
    assert waits[0] == 0 and waits[-1] > 2.0
    assert float(redis.get(one.key)) == float(redis.get(other.key))


def test_an_urgent_send_goes_at_once_and_the_later_ones_wait_for_it(redis):
    """A one-time code does not wait behind a booked drain; what was booked after it waits its share."""
    throttle = Throttle(redis, "africastalking", rate_per_second=10.0, burst_seconds=0.0)
    assert throttle.reserve(100) == 0  # a bulk batch: ten seconds of sends booked
    assert throttle.reserve(1, urgent=True) == 0
    after = throttle.reserve(1)
    assert 10.05 < after <= 10.2  # behind the batch and the code
    waits = throttle.schedule([1, 1, 1], [False, True, False])
    assert waits[1] == 0 and waits[0] > 10.1 and waits[2] > waits[0] + 0.15


def test_acquire_of_an_urgent_send_never_sleeps(redis):
    slept: list[float] = []
    throttle = Throttle(redis, "africastalking", 1.0, 0.0, sleep=slept.append)
    throttle.acquire(50)
    assert throttle.acquire(1, urgent=True) == 0 and slept == []
