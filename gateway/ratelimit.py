"""Fixed-window rate limits in Redis, shared by every process.

A limit is a name, a count and a window; one ``hit`` counts an event against several windows at
once (``60 s apart, 5 an hour, 10 a day``) in one round trip. A refused event is taken back, so a
refusal never uses up the quota of a longer window.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from .metrics import RATE_LIMITED


@dataclass(frozen=True)
class Limit:
    name: str
    count: int
    window_s: int


@dataclass(frozen=True)
class Counted:
    """An event counted on a pipeline, to judge once it has run (see ``RateLimiter.count``)."""

    limits: tuple[Limit, ...]
    keys: tuple[tuple[str, int], ...]  # (key, seconds left in its window) per limit
    cost: int


@dataclass(frozen=True)
class Decision:
    allowed: bool
    limit: Limit | None = None  # the first limit exceeded
    retry_after_s: int = 0


class RateLimiter:
    def __init__(self, redis, prefix: str = "elimu:rl", clock: Callable[[], float] = time.time) -> None:
        self.redis = redis
        self.prefix = prefix
        self.clock = clock

    def _key(self, limit: Limit, subject: str, now: float) -> tuple[str, int]:
        window = int(now // limit.window_s)
        ttl = limit.window_s - int(now % limit.window_s)
        return f"{self.prefix}:{limit.name}:{subject}:{window}", max(ttl, 1)

    def hit(self, subject: str, limits: Sequence[Limit], cost: int = 1) -> Decision:
        """Count one event for ``subject`` against every limit; refuse if any is exceeded."""
        pipe = self.redis.pipeline(transaction=False)
        counted = self.count(pipe, subject, limits, cost)
        decision = self.judge(counted, pipe.execute())
        if not decision.allowed:
            undo = self.redis.pipeline(transaction=False)
            self.take_back(undo, counted)
            undo.execute()
        return decision

    def count(self, pipe, subject: str, limits: Sequence[Limit], cost: int = 1) -> Counted:
        """Queue the counting of one event on ``pipe`` (a caller's pipeline, so the count rides in
        a round trip the caller makes anyway); ``judge`` reads the answers, ``take_back`` undoes it."""
        now = self.clock()
        keys = [self._key(limit, subject, now) for limit in limits]
        for key, ttl in keys:
            pipe.execute_command("INCRBY", key, cost)  # as incrby()/expire(), without their argument checks
            pipe.execute_command("EXPIRE", key, ttl + 1)
        return Counted(tuple(limits), tuple(keys), cost)

    def judge(self, counted: Counted, results: Sequence[object]) -> Decision:
        """The decision for a counted event, from the pipeline's answers to ``count``'s commands
        (the first ``2 * len(limits)`` of ``results``). A refused event must be taken back."""
        for i, limit in enumerate(counted.limits):
            if int(results[2 * i]) > limit.count:  # type: ignore[call-overload]
                RATE_LIMITED.labels(limit.name).inc()
                return Decision(False, limit, counted.keys[i][1])
        return Decision(True)

    def take_back(self, pipe, counted: Counted) -> None:
        """Queue the undoing of a counted event (refused, or not to be counted after all) on ``pipe``."""
        for key, _ in counted.keys:
            pipe.execute_command("DECRBY", key, counted.cost)

    def peek(self, subject: str, limits: Sequence[Limit]) -> Decision:
        """Whether the next event would be refused, without counting it."""
        now = self.clock()
        keys = [self._key(limit, subject, now) for limit in limits]
        values = self.redis.mget([k for k, _ in keys])
        for (_key, ttl), limit, value in zip(keys, limits, values, strict=True):
            if value is not None and int(value) >= limit.count:
                return Decision(False, limit, ttl)
        return Decision(True)

    def reset(self, subject: str, limits: Sequence[Limit]) -> None:
        now = self.clock()
        self.redis.delete(*[self._key(limit, subject, now)[0] for limit in limits])


# The limits of the service (issue: hardening). Names appear in metrics and logs.
INBOUND_PER_MINUTE = Limit("sms_inbound_per_phone", 6, 60)
RESULTS_PER_HOUR = Limit("results_queries_per_phone", 10, 3600)
OTP_SEND = (Limit("otp_gap", 1, 60), Limit("otp_hour", 5, 3600), Limit("otp_day", 10, 86400))
