"""Database and Redis failures in commands as one line (exit 3), never a traceback."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import click
import redis.exceptions as redis_errors
from redis.sentinel import MasterNotFoundError
from sqlalchemy.exc import InterfaceError, OperationalError, ProgrammingError

EXIT_DATABASE = 3


class DatabaseFailure(click.ClickException):
    exit_code = EXIT_DATABASE


@contextmanager
def database_errors() -> Iterator[None]:
    """Turn a missing table or an unreachable server into ``Error: database: …``."""
    try:
        yield
    except (OperationalError, ProgrammingError, InterfaceError) as exc:
        detail = str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc).splitlines()[0]
        hint = " (run `elimu db upgrade`)" if "table" in detail.lower() or "relation" in detail.lower() else ""
        raise DatabaseFailure(f"database: {detail}{hint}") from None
    except (redis_errors.ConnectionError, redis_errors.TimeoutError, redis_errors.ResponseError) as exc:
        # ResponseError: a server refusing the connection's set-up (a REDIS_URL naming a database
        # number the server does not have, a password it does not take)
        if isinstance(exc, MasterNotFoundError):  # its text holds the client's whole repr
            head, _, rest = str(exc).partition(" : ")
            raise DatabaseFailure(f"redis: {head.strip()} ({rest.rpartition(' - ')[2].strip()}): are "
                                  "ELIMU_REDIS_SENTINELS and ELIMU_REDIS_SENTINEL_MASTER right and the "
                                  "sentinels up?") from None
        detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DatabaseFailure(f"redis: {detail} (is REDIS_URL right and the server up?)") from None
