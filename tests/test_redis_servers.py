"""The test suite's own ``redis-server`` starter (``tests/redis_servers.py``) never takes another
server on its port for the one it started."""

from __future__ import annotations

import socket

import redis

from tests import redis_servers


def test_a_port_taken_before_the_server_binds_it_is_left_for_the_next(tmp_path):
    with socket.socket() as taken:  # what took the port between the probe and redis-server's bind
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy = taken.getsockname()[1]
        ports = iter([busy, *(port for _, port in zip(range(4), redis_servers.free_ports(), strict=False))])
        proc, port = redis_servers.start(lambda p: ["--port", str(p), "--bind", "127.0.0.1", "--save", "",
                                                    "--dir", str(tmp_path)], ports)
    try:
        assert port != busy
        assert redis.Redis(host="127.0.0.1", port=port).info("server")["process_id"] == proc.pid
    finally:
        redis_servers.stop(proc)
