"""Round trips for the hot callbacks, on a redis-py connection each thread keeps.

A USSD hop makes two Redis round trips and an inbound SMS one. Through ``Redis.pipeline()`` each
costs about 100 us of CPU in redis-py 8, most of it around the wire rather than on it: taking a
connection from the pool and giving it back, retry and observability wrappers, and a response
callback per command. ``ThreadLink`` sends the same commands on the same kind of connection
(redis-py's own ``Connection``, from the client's pool, so URL, TLS, auth, db, Sentinel and the
timeouts are as configured), but keeps that connection for the calling thread.

On a socket connection the commands are packed by hiredis itself and the replies read from the
socket into a hiredis reader of the thread's own: redis-py's packing and per-reply reading cost
2-3 us a command and 3-4 us a reply more than the work itself (``bench/README.md``). Error
replies become redis-py's own exception classes (``BaseParser.parse_error``); RESP3 push messages
(redis-py 8 speaks RESP3 by default) that arrive between replies are skipped, not taken for
replies. Any other connection goes through its own ``pack_commands`` and ``read_response``:
fakeredis in tests, and a connection class that reads replies its own way, such as Sentinel's,
which turns a READONLY reply from a demoted master into a reconnection.

The answers are Redis's raw replies: ``SET ... NX`` gives ``b"OK"`` or None, counters give ints,
``GET`` gives bytes or None (no redis-py response callbacks). A connection or timeout error
drops the connection and the round trip is sent once more on a new one, as redis-py's default
retry does (an error reply of the connection kind, LOADING, counts as one); any other error reply
is raised once every reply of the round trip has been read, so the connection stays in step.
"""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Sequence
from typing import Any

import hiredis
import redis as redis_lib
from redis._parsers import BaseParser
from redis.connection import AbstractConnection
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import InvalidResponse, RedisError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

Command = tuple[Any, ...]

READ_SIZE = 65536
_MORE = object()  # the reader's answer while a reply is still incomplete
_PUSH = getattr(hiredis, "PushNotification", None)  # hiredis 3.2+: how a RESP3 push message reads


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


class _Wire:
    """A connected socket of a thread's connection, with the hiredis reader for its replies."""

    def __init__(self, sock: socket.socket, connection: Any) -> None:
        self.sock = sock
        options: dict[str, Any] = {"protocolError": InvalidResponse, "replyError": BaseParser.parse_error,
                                   "notEnoughData": _MORE}
        encoder = connection.encoder
        if encoder.decode_responses:
            options.update(encoding=encoder.encoding, errors=encoder.encoding_errors)
        self.reader = hiredis.Reader(**options)
        self.buffer = bytearray(READ_SIZE)

    def exchange(self, payload: bytes, count: int) -> list[Any]:
        """Send ``payload`` (``count`` packed commands) and read their ``count`` replies."""
        sock, reader, buffer = self.sock, self.reader, self.buffer
        try:
            sock.sendall(payload)
            replies = []
            while len(replies) < count:
                reply = reader.gets()
                if reply is _MORE:
                    read = sock.recv_into(buffer)
                    if not read:
                        raise RedisConnectionError("Connection closed by server.")
                    reader.feed(buffer, 0, read)
                elif _PUSH is None or not isinstance(reply, _PUSH):  # a push message is not a reply
                    replies.append(reply)
        except TimeoutError as exc:  # socket.timeout
            raise RedisTimeoutError("Timeout talking to Redis") from exc
        except OSError as exc:
            raise RedisConnectionError(f"Error talking to Redis: {exc}") from exc
        for reply in replies:
            if isinstance(reply, RedisError):
                raise reply
        return replies


class ThreadLink:
    """Each thread's own connection from ``client``'s pool, for ``Batch`` round trips."""

    def __init__(self, client: redis_lib.Redis) -> None:
        self.client = client
        self._local = threading.local()

    def pipeline(self) -> Batch:
        return Batch(self)

    def run(self, commands: Sequence[Command]) -> list[Any]:
        payload = None
        for attempt in (1, 2):
            connection, wire = self._connection(), None
            try:
                wire = self._wire(connection)
                if wire is None:
                    connection.send_packed_command(connection.pack_commands(commands))
                    return [connection.read_response() for _ in commands]
                if payload is None:
                    payload = b"".join([hiredis.pack_command(command) for command in commands])
                return wire.exchange(payload, len(commands))
            except ResponseError:
                if wire is None:  # replies after it may be left unread: the connection is out of step
                    self._drop(connection)
                raise
            except (RedisConnectionError, RedisTimeoutError):
                self._drop(connection)
                if attempt == 2:
                    raise
            except BaseException:
                self._drop(connection)
                raise
        raise AssertionError("unreachable")

    def _connection(self) -> Any:
        connection = getattr(self._local, "connection", None)
        if connection is None or connection.pid != os.getpid():  # none yet, or inherited over a fork
            connection = self.client.connection_pool.get_connection()
            self._local.connection = connection
            self._local.wire = None
        return connection

    def _wire(self, connection: Any) -> _Wire | None:
        """The connection's socket and reader (connecting it first), or None when the connection
        is not a plain RESP2 one on a socket (see the module docstring)."""
        wire = self._local.wire
        if wire is not None and wire.sock is getattr(connection, "_sock", None):
            return wire  # the usual case: the checks below passed when this wire was made
        if type(connection).read_response is not AbstractConnection.read_response:
            return None
        if _PUSH is None and getattr(connection, "protocol", None) not in (2, "2"):
            return None  # an older hiredis reads a push message as a list: redis-py tells them apart
        if getattr(connection, "_sock", None) is None:
            connection.connect()
        sock = getattr(connection, "_sock", None)
        if not isinstance(sock, socket.socket):
            return None
        wire = self._local.wire = _Wire(sock, connection)
        return wire

    def _drop(self, connection: Any) -> None:
        """Close the connection and hand it back to the pool, which reconnects it when next used."""
        self._local.connection = None
        self._local.wire = None
        try:
            connection.disconnect()
        finally:
            self.client.connection_pool.release(connection)
