"""A send-rate limit per provider, kept in Redis so every worker process shares it.

GCRA (a leaky bucket as one timestamp): the key holds the theoretical arrival time (TAT) of the
next message. Reserving ``n`` messages moves it ``n / rate`` seconds on and returns how long the
caller must wait before sending; up to ``burst`` seconds' worth may go at once after a pause. The
read-modify-write is a WATCH/MULTI transaction against Redis's own clock, so hosts with skewed
clocks still share one schedule and no Lua is needed (the embedded fakeredis has none).

One-time codes are booked as *urgent*: they go at once whatever is booked ahead of them and move
the schedule on by their share, so the announcements booked after them wait for them instead (a
parent on the USSD code screen never waits behind a drain; the rate over time is kept).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

import redis as redis_lib
from redis.exceptions import WatchError

KEY = "elimu:sms:throttle:{provider}"


class Throttle:
    def __init__(
        self,
        redis: redis_lib.Redis,
        provider: str,
        rate_per_second: float,
        burst_seconds: float = 1.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.redis = redis
        self.key = KEY.format(provider=provider)
        self.rate = rate_per_second
        self.burst = burst_seconds
        self.sleep = sleep

    @property
    def unlimited(self) -> bool:
        return self.rate <= 0

    def reserve(self, count: int = 1, urgent: bool = False) -> float:
        """Book ``count`` sends; the seconds to wait before making them (0: now; always 0 when
        ``urgent``)."""
        return self.schedule([count], [urgent])[0]

    def schedule(self, counts: Sequence[int], urgent: Sequence[bool] = ()) -> list[float]:
        """Book several sends (``counts[i]`` messages each) in one transaction, in this order; the
        seconds each must wait, exactly what ``reserve`` called for each in turn would answer (as
        if nobody else booked in between). One round trip instead of one per request. A send
        marked in ``urgent`` waits 0 and still takes its share of the schedule."""
        total = sum(counts)
        if self.unlimited or total <= 0:
            return [0.0] * len(counts)
        with self.redis.pipeline() as pipe:
            while True:
                try:
                    pipe.watch(self.key)
                    raw = pipe.get(self.key)
                    seconds, micros = pipe.time()
                    now = seconds + micros / 1_000_000
                    tat = max(float(raw) if raw else 0.0, now)
                    new_tat = tat + total / self.rate
                    pipe.multi()
                    pipe.set(self.key, repr(new_tat), px=int((new_tat - now + 60) * 1000))
                    pipe.execute()
                    break
                except WatchError:
                    continue
        waits, booked = [], tat - now  # seconds of sends already booked ahead of now
        for index, count in enumerate(counts):
            now_please = index < len(urgent) and urgent[index]
            waits.append(0.0 if now_please else max(booked - self.burst, 0.0))  # max(tat - burst, now) - now
            booked += count / self.rate
        return waits

    def acquire(self, count: int = 1, urgent: bool = False) -> float:
        """Wait until ``count`` sends are allowed; returns the seconds waited."""
        wait = self.reserve(count, urgent)
        if wait > 0:
            self.sleep(wait)
        return wait
