"""Round trips for the hot callbacks, on a redis-py connection each thread keeps.

A USSD hop makes two Redis round trips and an inbound SMS one. Through ``Redis.pipeline()`` each
costs about 100 us of CPU in redis-py 8, most of it around the wire rather than on it: taking a
connection from the pool and giving it back, retry and observability wrappers, and a response
callback per command. ``ThreadLink`` sends the same commands on the same kind of connection
(redis-py's own ``Connection``, from the client's pool, so URL, TLS, auth, db, Sentinel and the
timeouts are as configured), but keeps that connection for the calling thread: about 40 us per
round trip (see ``bench/README.md``).

The answers are Redis's raw replies: ``SET ... NX`` gives ``b"OK"`` or None, counters give ints,
``GET`` gives bytes or None (no redis-py response callbacks). A connection or timeout error
drops the connection and the round trip is sent once more on a new one, as redis-py's default
retry does; any other error (an error reply) drops the connection and is raised.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from typing import Any

import redis as redis_lib
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

Command = tuple[Any, ...]


class Batch:
    """Commands queued for one round trip; the part of a redis-py pipeline the hot paths use."""

    def __init__(self, link: ThreadLink) -> None:
        self._link = link
        self.commands: list[Command] = []

    def execute_command(self, *args: Any) -> Batch:
        self.commands.append(args)
        return self

    def execute(self) -> list[Any]:
        """Send the queued commands in one round trip; their replies, in order."""
        commands, self.commands = self.commands, []
        return self._link.run(commands) if commands else []


class ThreadLink:
    """Each thread's own connection from ``client``'s pool, for ``Batch`` round trips."""

    def __init__(self, client: redis_lib.Redis) -> None:
        self.client = client
        self._local = threading.local()

    def pipeline(self) -> Batch:
        return Batch(self)

    def run(self, commands: Sequence[Command]) -> list[Any]:
        for attempt in (1, 2):
            connection = self._connection()
            try:
                connection.send_packed_command(connection.pack_commands(commands))
                return [connection.read_response() for _ in commands]
            except (RedisConnectionError, RedisTimeoutError):
                self._drop(connection)
                if attempt == 2:
                    raise
            except BaseException:
                self._drop(connection)  # replies may be left unread: the connection is out of step
                raise
        raise AssertionError("unreachable")

    def _connection(self) -> Any:
        connection = getattr(self._local, "connection", None)
        if connection is None or connection.pid != os.getpid():  # none yet, or inherited over a fork
            connection = self.client.connection_pool.get_connection()
            self._local.connection = connection
        return connection

    def _drop(self, connection: Any) -> None:
        """Close the connection and hand it back to the pool, which reconnects it when next used."""
        self._local.connection = None
        try:
            connection.disconnect()
        finally:
            self.client.connection_pool.release(connection)
