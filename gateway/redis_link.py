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

``Batch.send`` sends a round trip's commands without waiting for their replies (a hop's session
save: nothing in the hop depends on them): the thread reads them, already arrived, at the start of
its next round trip on the connection, so the hop spends no blocking wait on them (a sleep, a
wake-up and a hand-over of the GIL: about 25 us of CPU a hop in process). Redis runs a connection's
commands in the order they arrive, and they are in its socket before ``send`` returns, so any
command sent after it, on any connection, finds them done. Before sending, a connection the server
has closed is noticed (a FIN waiting on the socket) and replaced, as a round trip would; an error
reply among them, or their connection lost before they were read, is logged (its commands may not
have run), not raised into an unrelated round trip.
"""

from __future__ import annotations

import logging
import os
import select
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

log = logging.getLogger(__name__)

READ_SIZE = 65536
# the peer's FIN (POLLRDHUP, Linux), or the connection broken or closed
_CLOSED = getattr(select, "POLLRDHUP", 0) | select.POLLHUP | select.POLLERR | select.POLLNVAL
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

    def send(self) -> None:
        """Send the queued commands without waiting for their replies (``ThreadLink.send``)."""
        commands, self.commands = self.commands, []
        if commands:
            self._link.send(commands)


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
        self.unread = 0  # replies of commands sent by ``send``, read at the start of the next exchange
        self.poll = select.poll()
        self.poll.register(sock, _CLOSED)

    def closed_by_server(self) -> bool:
        """Whether the server has closed this connection (its FIN waits on the socket): a poll that
        does not block and reads nothing. A reply or push message waiting is not a close."""
        return any(events & _CLOSED for _, events in self.poll.poll(0))

    def send(self, payload: bytes, count: int) -> None:
        """Send ``payload`` (``count`` packed commands); their replies are read by the next exchange."""
        try:
            self.sock.sendall(payload)
        except TimeoutError as exc:  # socket.timeout
            raise RedisTimeoutError("Timeout talking to Redis") from exc
        except OSError as exc:
            raise RedisConnectionError(f"Error talking to Redis: {exc}") from exc
        self.unread += count

    def exchange(self, payload: bytes, count: int) -> list[Any]:
        """Send ``payload`` (``count`` packed commands) and read their ``count`` replies, after the
        replies still unread of commands ``send`` sent before them."""
        sock, reader, buffer = self.sock, self.reader, self.buffer
        unread = self.unread
        try:
            sock.sendall(payload)
            replies = []
            count += unread
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
        if unread:
            self.unread = 0
            _log_failed_sends([reply for reply in replies[:unread] if isinstance(reply, RedisError)])
            replies = replies[unread:]
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

    def send(self, commands: Sequence[Command]) -> None:
        """Send ``commands`` without waiting for their replies (see the module docstring). A
        connection that is not a plain one on a socket (fakeredis, Sentinel's) runs them as a round
        trip; so does a send that fails on a connection, sent once more on a new one, as ``run`` does."""
        connection = self._connection()
        wire = None
        try:
            wire = self._wire(connection)
            if wire is not None and not wire.closed_by_server():
                wire.send(b"".join([hiredis.pack_command(command) for command in commands]), len(commands))
                return
        except (RedisConnectionError, RedisTimeoutError):
            pass
        except BaseException:
            self._drop(connection)
            raise
        if wire is not None:
            self._drop(connection)  # closed by the server, or the send failed: ``run`` reconnects
        self.run(commands)

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
        wire = self._local.wire
        if wire is not None and wire.unread:
            log.warning("Redis connection lost before the replies of %d commands sent without waiting were "
                        "read: they may not have run (a USSD session's last save may be lost)", wire.unread)
        self._local.connection = None
        self._local.wire = None
        try:
            connection.disconnect()
        finally:
            self.client.connection_pool.release(connection)


def _log_failed_sends(errors: list[RedisError]) -> None:
    """Error replies to commands ``send`` sent: nobody waits for them any more, so they are logged
    (by class: an error's text may name a key)."""
    if errors:
        log.warning("Redis refused %d commands sent without waiting for their replies (%s)", len(errors),
                    ", ".join(sorted({type(error).__name__ for error in errors})))
