"""Times as the commands print them: in UTC (SQLite gives datetimes back without a zone)."""

from __future__ import annotations

from datetime import UTC, datetime


def as_utc(at: datetime) -> datetime:
    """``at`` in UTC; a datetime without a zone is taken as UTC, as the database stores it."""
    return (at if at.tzinfo else at.replace(tzinfo=UTC)).astimezone(UTC)


def iso_utc(at: datetime | None) -> str | None:
    """``at`` as ISO 8601 in UTC, or None."""
    return None if at is None else as_utc(at).isoformat()
