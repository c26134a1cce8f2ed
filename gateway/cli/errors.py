"""Database and Redis failures in commands, and changes the database refuses, as one line (exit 3),
never a traceback."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import click
import redis.exceptions as redis_errors
from redis.sentinel import MasterNotFoundError
from sqlalchemy.exc import DataError, DBAPIError, IntegrityError

EXIT_DATABASE = 3
EXIT_INTERRUPTED = 130  # Ctrl-C: 128 + SIGINT


class DatabaseFailure(click.ClickException):
    exit_code = EXIT_DATABASE


@contextmanager
def database_errors() -> Iterator[None]:
    """Turn a missing table or an unreachable server into ``Error: database: …``, and a change the
    database refused (a duplicate key another process took first, a value longer than its column)
    into ``Error: database refused …``: its transaction was rolled back."""
    try:
        yield
    except IntegrityError as exc:
        raise DatabaseFailure(f"database refused the change: {_first_line(exc)} (another process changing the "
                              "same records at the same moment? nothing of it was written: run the command "
                              "again)") from None
    except DataError as exc:
        raise DatabaseFailure(f"database refused a value: {_first_line(exc)} (nothing of it was written)") from None
    except DBAPIError as exc:
        detail = _first_line(exc)
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


def _first_line(exc: DBAPIError) -> str:
    """The driver's message without SQLAlchemy's SQL and link (PostgreSQL's DETAIL lines dropped)."""
    text = str(exc.orig).strip() if exc.orig is not None else ""
    return (text or str(exc)).splitlines()[0]
