"""A fast fake of Africa's Talking's SMS API for benchmarks: ``python -m bench.fake_at PORT REDIS_URL``.

Answers ``POST /version1/messaging`` (and the premium content URL) like AT: 201, exact
``application/json``, one ``Recipients`` entry per number with a fresh ``messageId``. Every
recipient is counted so the benchmark can tell lost and duplicated messages apart and time the
arrival of each phone's first message.

It stands in for AT's servers, which are not on the machine in service, so it is kept lean: it
shares the two cores with the service it measures, and what it spends is taken from the service's
figures. The counts are kept in memory at arrival (times taken then) and written to Redis in one
pipeline every ``FLUSH_S`` seconds, not in a round trip per request; it runs on uvloop.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import sys
import time
from collections import Counter
from urllib.parse import parse_qsl

import redis.asyncio as aioredis
import uvloop
from aiohttp import web

_ids = itertools.count(1)

COUNTS = "fakeat:count"  # hash: recipient -> messages received
FIRST_SEEN = "fakeat:first"  # hash: recipient -> unix time of the first message
TOTAL = "fakeat:total"
LAST = "fakeat:last"  # unix time of the latest message
FLUSH_S = 0.05  # counts reach Redis within this long of their arrival


class Tally:
    """Recipients counted in memory as they arrive, written to Redis by ``flush``."""

    def __init__(self, store: aioredis.Redis, every: float = FLUSH_S) -> None:
        self.store, self.every = store, every
        self.counts: Counter[str] = Counter()
        self.first: dict[str, float] = {}
        self.last: float | None = None

    def add(self, numbers: list[str], now: float) -> None:
        self.counts.update(numbers)
        for number in numbers:
            self.first.setdefault(number, now)
        self.last = now

    async def flush(self) -> None:
        if not self.counts:
            return
        counts, first, last = self.counts, self.first, self.last
        self.counts, self.first = Counter(), {}
        pipe = self.store.pipeline(transaction=False)
        for number, count in counts.items():
            pipe.hincrby(COUNTS, number, count)
        for number, seen in first.items():
            pipe.hsetnx(FIRST_SEEN, number, repr(seen))  # the earliest wins: earlier flushes went first
        pipe.incrby(TOTAL, sum(counts.values()))
        pipe.set(LAST, repr(last))
        await pipe.execute()

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self.every)
            try:
                await self.flush()
            except Exception as exc:  # noqa: BLE001 - those counts are lost (the figures show it); keep counting
                print(f"fake AT: counts not written to Redis ({exc!r})", file=sys.stderr, flush=True)


async def messaging(request: web.Request) -> web.Response:
    form = dict(parse_qsl((await request.read()).decode()))
    recipients = [r.strip() for r in form.get("to", "").split(",") if r.strip()]
    if not form.get("username") or not recipients or not form.get("message"):
        return web.Response(status=400, text="Missing parameters")
    request.app["tally"].add(recipients, time.time())
    entries = [{"statusCode": 101, "number": number, "status": "Success", "cost": "KES 0.8000",
                "messageId": f"ATXid_bench{next(_ids)}"} for number in recipients]
    body = {"SMSMessageData": {"Message": f"Sent to {len(entries)}/{len(entries)} Total Cost: KES 0.8",
                               "Recipients": entries}}
    return web.Response(status=201, body=json.dumps(body).encode(), content_type="application/json")


def make_app(store: aioredis.Redis, flush_every: float = FLUSH_S) -> web.Application:
    app = web.Application()
    app["tally"] = Tally(store, flush_every)

    async def flusher(app: web.Application):
        task = asyncio.create_task(app["tally"].run())
        yield
        task.cancel()
        await app["tally"].flush()

    app.cleanup_ctx.append(flusher)
    app.router.add_post("/version1/messaging", messaging)
    return app


if __name__ == "__main__":
    port, url = int(sys.argv[1]), sys.argv[2]
    loop = uvloop.new_event_loop()
    asyncio.set_event_loop(loop)
    web.run_app(make_app(aioredis.Redis.from_url(url)), host="127.0.0.1", port=port, access_log=None, print=None, loop=loop)
