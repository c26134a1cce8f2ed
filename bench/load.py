"""An asyncio load generator: closed loop (find the peak) or open loop (a fixed arrival rate).

It runs on uvloop: it shares the two cores with the service it measures, and the telco it stands
in for is not on the machine in service, so the less it spends the truer the service's figures.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import aiohttp
import uvloop

# One "operation" is a coroutine that does its requests with the session and returns
# nothing; it raises on a wrong answer. ``i`` numbers the operations (unique phones, ids...).
Operation = Callable[[aiohttp.ClientSession, int], Awaitable[None]]


@dataclass
class Outcome:
    operations: int = 0
    errors: int = 0
    seconds: float = 0.0
    latencies_ms: list[float] = field(default_factory=list)
    first_error: str | None = None

    @property
    def throughput(self) -> float:
        return self.operations / self.seconds if self.seconds else 0.0

    def percentile(self, p: float) -> float:
        if not self.latencies_ms:
            return float("nan")
        data = sorted(self.latencies_ms)
        k = min(len(data) - 1, max(0, round(p / 100 * (len(data) - 1))))
        return data[k]

    @property
    def p50(self) -> float:
        return statistics.median(self.latencies_ms) if self.latencies_ms else float("nan")

    @property
    def p99(self) -> float:
        return self.percentile(99)


def _connector(concurrency: int) -> aiohttp.TCPConnector:
    return aiohttp.TCPConnector(limit=concurrency, keepalive_timeout=30)


async def _timed(op: Operation, session: aiohttp.ClientSession, i: int, outcome: Outcome) -> None:
    start = time.perf_counter()
    try:
        await op(session, i)
    except Exception as exc:  # noqa: BLE001 - count it, keep the load going
        outcome.errors += 1
        outcome.first_error = outcome.first_error or f"{type(exc).__name__}: {exc}"[:300]
        return
    outcome.latencies_ms.append((time.perf_counter() - start) * 1000)
    outcome.operations += 1


async def closed_loop(op: Operation, total: int, concurrency: int, start_index: int = 0) -> Outcome:
    """``concurrency`` clients each doing operations back to back until ``total`` are done."""
    outcome = Outcome()
    counter = iter(range(start_index, start_index + total))
    async with aiohttp.ClientSession(connector=_connector(concurrency)) as session:

        async def client() -> None:
            for i in counter:
                await _timed(op, session, i, outcome)

        began = time.perf_counter()
        await asyncio.gather(*(client() for _ in range(concurrency)))
        outcome.seconds = time.perf_counter() - began
    return outcome


async def open_loop(op: Operation, rate: float, seconds: float, start_index: int = 0,
                    max_in_flight: int = 2000) -> Outcome:
    """Start operations at a fixed ``rate`` per second for ``seconds``, whatever the answers' speed."""
    outcome = Outcome()
    async with aiohttp.ClientSession(connector=_connector(max_in_flight)) as session:
        tasks = []
        began = time.perf_counter()
        n = int(rate * seconds)
        for k in range(n):
            due = began + k / rate
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(_timed(op, session, start_index + k, outcome)))
        await asyncio.gather(*tasks)
        outcome.seconds = time.perf_counter() - began
    return outcome


def run(coro: Awaitable[Outcome]) -> Outcome:
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(coro)  # type: ignore[arg-type]
