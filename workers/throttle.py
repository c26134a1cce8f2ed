"""A send-rate limit per provider, kept in Redis so every worker process shares it.

GCRA (a leaky bucket as one timestamp): the key holds the theoretical arrival time (TAT) of the
next message. Reserving ``n`` messages moves it ``n / rate`` seconds on and returns how long the
caller must wait before sending; up to ``burst`` seconds' worth may go at once after a pause. The
read-modify-write is a WATCH/MULTI transaction against Redis's own clock, so hosts with skewed
clocks still share one schedule and no Lua is needed (the embedded fakeredis has none).
"""

from __future__ import annotations

import time
from collections.abc import Callable

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

    def reserve(self, count: int = 1) -> float:
        """Book ``count`` sends; the seconds to wait before making them (0: now)."""
        if self.unlimited or count <= 0:
            return 0.0
        cost = count / self.rate
        with self.redis.pipeline() as pipe:
            while True:
                try:
                    pipe.watch(self.key)
                    raw = pipe.get(self.key)
                    seconds, micros = pipe.time()
                    now = seconds + micros / 1_000_000
                    tat = max(float(raw) if raw else 0.0, now)
                    start = max(tat - self.burst, now)
                    new_tat = tat + cost
                    pipe.multi()
                    pipe.set(self.key, repr(new_tat), px=int((new_tat - now + 60) * 1000))
                    pipe.execute()
                    return start - now
                except WatchError:
                    continue

    def acquire(self, count: int = 1) -> float:
        """Wait until ``count`` sends are allowed; returns the seconds waited."""
        wait = self.reserve(count)
        if wait > 0:
            self.sleep(wait)
        return wait
