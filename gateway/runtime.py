"""The process-wide services every entry point needs: settings, database, Redis.

The web app, the CLI and the workers all build one ``Runtime`` from the same settings, so the
embedded defaults (SQLite, in-process Redis, outbox SMS) and production (PostgreSQL, Redis, AT)
run the same code.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from urllib.parse import urlparse

import fakeredis
import redis as redis_lib

from registry.db import Database

from .config import Settings
from .redis_link import ThreadLink

_EMBEDDED_SERVER: fakeredis.FakeServer | None = None
_EMBEDDED_LOCK = threading.Lock()


def embedded_redis_server() -> fakeredis.FakeServer:
    """The one in-process Redis server of this process (shared by the web app and the SMS worker)."""
    global _EMBEDDED_SERVER
    with _EMBEDDED_LOCK:
        if _EMBEDDED_SERVER is None:
            _EMBEDDED_SERVER = fakeredis.FakeServer()
        return _EMBEDDED_SERVER


REDIS_OPTIONS = {"socket_timeout": 2.0, "socket_connect_timeout": 2.0, "health_check_interval": 30}


def connect_redis(settings: Settings, server: fakeredis.FakeServer | None = None) -> redis_lib.Redis:
    """Real Redis (directly, or the master that Sentinel names), else the embedded one."""
    if settings.redis_sentinels:
        from redis.sentinel import Sentinel

        sentinel = Sentinel(list(settings.redis_sentinels), sentinel_kwargs={"socket_timeout": 1.0}, **REDIS_OPTIONS)
        path = urlparse(settings.redis_url or "").path.strip("/")
        db = int(path) if path.isdigit() else 0
        return sentinel.master_for(settings.redis_sentinel_master, db=db)
    if settings.redis_url is None:
        return fakeredis.FakeRedis(server=server or embedded_redis_server())
    return redis_lib.Redis.from_url(settings.redis_url, **REDIS_OPTIONS)


LINK_KEY = "redis_link"


@dataclass
class Runtime:
    settings: Settings
    db: Database
    redis: redis_lib.Redis
    extras: dict[str, object] = field(default_factory=dict)

    @classmethod
    def build(
        cls, settings: Settings, *, db: Database | None = None, redis: redis_lib.Redis | None = None,
        serving: bool = False,
    ) -> Runtime:
        """Assemble from settings; tests pass their own ``db``/``redis``. ``serving``: for the web
        service, whose statements are cut off after ``db_statement_timeout_ms`` (a callback stuck
        behind a lock would hold a web thread long after the telco gave up; the CLI's imports and
        the workers' batches are not cut off)."""
        timeout = settings.db_statement_timeout_ms if serving else None
        runtime = cls(
            settings=settings,
            db=db or Database(settings.database_url, statement_timeout_ms=timeout,
                              connect_timeout_s=settings.db_connect_timeout_s),
            redis=redis if redis is not None else connect_redis(settings),
        )
        _wire_sms(runtime)
        return runtime

    @property
    def link(self) -> ThreadLink:
        """Round trips for the hot callbacks on ``redis`` (see ``gateway.redis_link``), built once
        per client (a test may swap ``redis``)."""
        link = self.extras.get(LINK_KEY)
        if not isinstance(link, ThreadLink) or link.client is not self.redis:
            link = self.extras[LINK_KEY] = ThreadLink(self.redis)
        return link

    def close(self) -> None:
        self.db.dispose()


def _wire_sms(runtime: Runtime) -> None:
    """Hand committed outbox rows to the SMS queues (see ``workers.dispatch``)."""
    try:
        from workers.dispatch import make_dispatcher
    except ImportError:  # the SMS pipeline is not installed in this build
        return
    runtime.db.dispatch = make_dispatcher(runtime)
