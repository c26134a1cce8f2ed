"""Redis through Sentinel: a real ``redis-server --sentinel`` watching the local Redis."""

import pytest

from gateway.config import ConfigError, Settings
from gateway.redis_link import ThreadLink
from gateway.runtime import connect_redis
from tests import redis_servers


@pytest.fixture
def sentinel(tmp_path, redis_url):
    host_port = redis_url.split("//", 1)[1].rsplit("/", 1)[0]
    host, master_port = host_port.split(":")
    conf = tmp_path / "sentinel.conf"

    def arguments(port: int) -> list[str]:  # Sentinel rewrites its file: a fresh one for each port tried
        conf.write_text(f"port {port}\nbind 127.0.0.1\nsentinel monitor elimu {host} {master_port} 1\n"
                        f"dir {tmp_path}\n")
        return [str(conf), "--sentinel"]

    proc, port = redis_servers.start(arguments)
    yield port
    redis_servers.stop(proc)


def test_redis_through_sentinel(sentinel, redis_url):
    db = redis_url.rsplit("/", 1)[1]
    settings = Settings.from_env({"ELIMU_REDIS_SENTINELS": f"127.0.0.1:{sentinel}",
                                  "ELIMU_REDIS_SENTINEL_MASTER": "elimu", "REDIS_URL": f"redis://sentinel/{db}",
                                  "ELIMU_SECRET_KEY": "x" * 32})
    assert not settings.embedded_redis
    client = connect_redis(settings)
    client.set("elimu:sentinel-test", "1")
    assert client.get("elimu:sentinel-test") == b"1"
    assert client.connection_pool.connection_kwargs["db"] == int(db)
    link = ThreadLink(client)  # the hops' round trips: through Sentinel's own reading, which turns a
    batch = link.pipeline()    # READONLY reply from a demoted master into a reconnection
    batch.execute_command("GET", "elimu:sentinel-test")
    assert batch.execute() == [b"1"] and link._local.wire is None


def test_bad_sentinel_list_is_a_one_line_error():
    with pytest.raises(ConfigError, match="ELIMU_REDIS_SENTINELS"):
        Settings.from_env({"ELIMU_REDIS_SENTINELS": "nohost", "ELIMU_SECRET_KEY": "x" * 32})
