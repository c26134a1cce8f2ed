"""The ``outbox`` backend (the embedded default): sends nothing, marks every message delivered.

In development it also keeps the clear text of each SMS in a per-phone inbox list in Redis (with a
TTL), so the simulator's terminal phone can show a phone its messages, one-time codes included.
Outside development nothing is kept: clear OTPs never rest in a production Redis.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

import redis as redis_lib

from registry.models import utcnow

from . import Outcome, Outgoing, SendResult

INBOX_KEY = "elimu:sms:inbox:{phone}"
INBOX_SIZE = 50
INBOX_TTL = 24 * 3600


class OutboxBackend:
    name = "outbox"
    throttled = False  # nothing leaves the process, so there is no provider rate to respect

    def __init__(self, redis: redis_lib.Redis, keep_inbox: bool = False) -> None:
        self.redis = redis
        self.keep_inbox = keep_inbox

    def send(self, messages: Sequence[Outgoing]) -> list[SendResult]:
        if self.keep_inbox and messages:
            at = utcnow().isoformat(timespec="seconds")
            pipe = self.redis.pipeline(transaction=False)
            for message in messages:
                key = INBOX_KEY.format(phone=message.recipient)
                entry = {"id": message.message_id, "kind": message.kind, "text": message.body, "at": at}
                pipe.lpush(key, json.dumps(entry))
                pipe.ltrim(key, 0, INBOX_SIZE - 1)
                pipe.expire(key, INBOX_TTL)
            pipe.execute()
        return [
            SendResult(m.message_id, Outcome.DELIVERED, provider_message_id=f"outbox-{m.message_id}")
            for m in messages
        ]


def read_inbox(redis: redis_lib.Redis, phone: str, limit: int = INBOX_SIZE) -> list[dict[str, object]]:
    """The messages the outbox kept for an E.164 phone, newest first (development only)."""
    raw = redis.lrange(INBOX_KEY.format(phone=phone), 0, limit - 1)
    return [json.loads(item) for item in raw]
