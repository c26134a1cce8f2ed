"""gateway.redis_link: one round trip per batch on a connection the thread keeps, recovering from
a lost connection and never left out of step by an error reply."""

from __future__ import annotations

import threading

import pytest
import redis as redis_lib

from gateway.redis_link import ThreadLink
from gateway.runtime import Runtime
from tests.conftest import unreachable_redis


@pytest.fixture(params=["fakeredis", "redis"])
def client(request: pytest.FixtureRequest):
    return request.getfixturevalue("fake_redis" if request.param == "fakeredis" else "real_redis")


def _batch(link: ThreadLink, *commands: tuple) -> list:
    batch = link.pipeline()
    for command in commands:
        batch.execute_command(*command)
    return batch.execute()


def test_replies_come_back_raw_and_in_order(client) -> None:
    link = ThreadLink(client)
    assert _batch(link, ("SET", "lock", "t1", "NX", "PX", 5000), ("SET", "lock", "t2", "NX", "PX", 5000),
                  ("GET", "lock"), ("GET", "missing"), ("INCRBY", "n", 3), ("EXPIRE", "n", 61),
                  ("DEL", "lock", "n")) == [b"OK", None, b"t1", None, 3, 1, 2]
    assert link.pipeline().execute() == []  # nothing queued: no round trip


def test_a_thread_keeps_its_connection_and_threads_do_not_share(real_redis) -> None:
    link = ThreadLink(real_redis)
    ids = []
    both_running = threading.Barrier(2)

    def client_ids() -> None:
        both_running.wait()  # alive together: distinct thread idents
        for _ in range(3):
            ids.append((threading.get_ident(), _batch(link, ("CLIENT", "ID"))[0]))
        both_running.wait()

    threads = [threading.Thread(target=client_ids) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    by_thread: dict[int, set] = {}
    for thread_id, client_id in ids:
        by_thread.setdefault(thread_id, set()).add(client_id)
    assert all(len(seen) == 1 for seen in by_thread.values())  # each thread: one connection, kept
    assert len({next(iter(seen)) for seen in by_thread.values()}) == 2  # and not the same one


def test_an_error_reply_is_raised_and_the_next_batch_is_in_step(client) -> None:
    link = ThreadLink(client)
    _batch(link, ("SET", "text", "v"))
    with pytest.raises(redis_lib.ResponseError):
        _batch(link, ("GET", "text"), ("LPUSH", "text", "x"), ("SET", "after", "1"), ("GET", "text"))
    # the replies after the error were never read; a kept connection would hand them to this batch
    assert _batch(link, ("GET", "after"), ("GET", "text")) == [b"1", b"v"]


def test_a_connection_the_server_closed_is_replaced_and_the_batch_sent_again(real_redis) -> None:
    link = ThreadLink(real_redis)
    first = _batch(link, ("CLIENT", "ID"))[0]
    real_redis.execute_command("CLIENT", "KILL", "ID", first)
    counted, second = _batch(link, ("INCR", "n"), ("CLIENT", "ID"))
    assert second != first
    assert counted == 1 and real_redis.get("n") == b"1"  # sent once: the dead connection carried nothing


def test_a_connection_inherited_over_a_fork_is_not_used(client) -> None:
    link = ThreadLink(client)
    _batch(link, ("SET", "k", "v"))
    inherited = link._local.connection
    inherited.pid = -1  # what a child process sees: a connection its parent opened
    assert _batch(link, ("GET", "k")) == [b"v"]
    assert link._local.connection is not inherited


def test_redis_away_raises_a_connection_error_after_one_more_try() -> None:
    link = ThreadLink(unreachable_redis())
    with pytest.raises(redis_lib.ConnectionError):
        _batch(link, ("GET", "k"))


def test_the_runtime_builds_one_link_per_client(runtime: Runtime, fake_redis) -> None:
    assert runtime.link is runtime.link and runtime.link.client is fake_redis
    runtime.redis = redis_lib.Redis(host="127.0.0.1", port=1)
    assert runtime.link.client is runtime.redis  # a swapped client gets a link of its own


def test_a_socket_connection_is_read_through_the_thread_s_own_reader(real_redis) -> None:
    link = ThreadLink(real_redis)
    _batch(link, ("SET", "k", "v"))
    wire = link._local.wire
    assert wire is not None and wire.sock is link._local.connection._sock  # hiredis packing and reading
    value = "x" * 200_000  # a reply larger than one read: assembled from several
    assert _batch(link, ("SET", "big", value), ("GET", "big"), ("STRLEN", "big")) == [b"OK", value.encode(), 200_000]


def test_an_error_reply_on_a_socket_leaves_the_connection_in_place(real_redis) -> None:
    link = ThreadLink(real_redis)
    (before,) = _batch(link, ("CLIENT", "ID"))
    _batch(link, ("SET", "text", "v"))
    with pytest.raises(redis_lib.ResponseError, match="WRONGTYPE"):
        _batch(link, ("LPUSH", "text", "x"), ("SET", "after", "1"))
    assert _batch(link, ("GET", "after"), ("CLIENT", "ID")) == [b"1", before]  # every reply was read


def test_replies_are_decoded_when_the_client_decodes(real_redis, redis_url: str) -> None:
    link = ThreadLink(redis_lib.Redis.from_url(redis_url, decode_responses=True))
    assert _batch(link, ("SET", "k", "v\u00e9"), ("GET", "k"), ("GET", "missing")) == ["OK", "v\u00e9", None]


def test_error_replies_on_a_socket_are_redis_py_s_own_classes(real_redis) -> None:
    link = ThreadLink(real_redis)
    with pytest.raises(redis_lib.exceptions.NoScriptError):
        _batch(link, ("EVALSHA", "0" * 40, 0), ("SET", "after", "1"))
    assert _batch(link, ("GET", "after")) == [b"1"]


def test_push_messages_between_replies_are_skipped(real_redis) -> None:
    link = ThreadLink(real_redis)  # redis-py 8 speaks RESP3 by default: the server may push
    assert real_redis.connection_pool.get_connection().protocol in (3, "3")
    assert _batch(link, ("SET", "k", "v"), ("CLIENT", "TRACKING", "ON"), ("GET", "k")) == [b"OK", b"OK", b"v"]
    real_redis.set("k", "changed")  # the server pushes an invalidation of k onto the link's connection
    assert _batch(link, ("GET", "k"), ("INCR", "n")) == [b"changed", 1]
    assert link._local.wire is not None


def test_a_resp2_connection_is_read_the_same_way(real_redis, redis_url: str) -> None:
    link = ThreadLink(redis_lib.Redis.from_url(redis_url, protocol=2))
    assert _batch(link, ("SET", "k", "v"), ("GET", "k"), ("INCRBY", "n", 2)) == [b"OK", b"v", 2]
    assert link._local.wire is not None
