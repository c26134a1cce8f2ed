"""Database failures in commands as one line (exit 3), never a traceback."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import click
from sqlalchemy.exc import OperationalError, ProgrammingError

EXIT_DATABASE = 3


class DatabaseFailure(click.ClickException):
    exit_code = EXIT_DATABASE


@contextmanager
def database_errors() -> Iterator[None]:
    """Turn a missing table or an unreachable server into ``Error: database: …``."""
    try:
        yield
    except (OperationalError, ProgrammingError) as exc:
        detail = str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc).splitlines()[0]
        hint = " (run `elimu db upgrade`)" if "table" in detail.lower() or "relation" in detail.lower() else ""
        raise DatabaseFailure(f"database: {detail}{hint}") from None
