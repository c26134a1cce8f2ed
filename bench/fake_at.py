"""A fast fake of Africa's Talking's SMS API for benchmarks: ``python -m bench.fake_at PORT REDIS_URL``.

Answers ``POST /version1/messaging`` (and the premium content URL) like AT: 201, exact
``application/json``, one ``Recipients`` entry per number with a fresh ``messageId``. Every
recipient is counted in Redis so the benchmark can tell lost and duplicated messages apart and
time the arrival of each phone's first message.
"""

from __future__ import annotations

import itertools
import json
import sys
import time

import redis.asyncio as aioredis
from aiohttp import web

_ids = itertools.count(1)

COUNTS = "fakeat:count"  # hash: recipient -> messages received
FIRST_SEEN = "fakeat:first"  # hash: recipient -> unix time of the first message
TOTAL = "fakeat:total"
LAST = "fakeat:last"  # unix time of the latest message


async def messaging(request: web.Request) -> web.Response:
    form = await request.post()
    recipients = [r.strip() for r in str(form.get("to", "")).split(",") if r.strip()]
    if not form.get("username") or not recipients or not form.get("message"):
        return web.Response(status=400, text="Missing parameters")
    now = time.time()
    store: aioredis.Redis = request.app["redis"]
    pipe = store.pipeline(transaction=False)
    entries = []
    for number in recipients:
        pipe.hincrby(COUNTS, number, 1)
        pipe.hsetnx(FIRST_SEEN, number, repr(now))
        entries.append({"statusCode": 101, "number": number, "status": "Success", "cost": "KES 0.8000",
                        "messageId": f"ATXid_bench{next(_ids)}"})
    pipe.incrby(TOTAL, len(recipients))
    pipe.set(LAST, repr(now))
    await pipe.execute()
    body = {"SMSMessageData": {"Message": f"Sent to {len(entries)}/{len(entries)} Total Cost: KES 0.8",
                               "Recipients": entries}}
    return web.Response(status=201, body=json.dumps(body).encode(), content_type="application/json")


def make_app(redis_url: str) -> web.Application:
    app = web.Application()
    app["redis"] = aioredis.Redis.from_url(redis_url)
    app.router.add_post("/version1/messaging", messaging)
    return app


if __name__ == "__main__":
    port, url = int(sys.argv[1]), sys.argv[2]
    web.run_app(make_app(url), host="127.0.0.1", port=port, access_log=None, print=None)
