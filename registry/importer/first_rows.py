"""The first row of each key in a file, kept in a private temporary SQLite database.

A file is streamed, and two rows with one key may be a million lines apart, in batches written
apart. Each key costs a few dozen bytes on disk (SQLite's own temporary file), not memory: a row
holds a hash of each field, enough to tell which fields a later row changes.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence


class FirstRows:
    """Remembers the line and field hashes of the first row of each key."""

    def __init__(self, fields: Sequence[str]) -> None:
        self.fields = tuple(fields)
        self._db = sqlite3.connect("")  # "": a temporary database that spills to a file removed on close
        self._db.execute("PRAGMA journal_mode = OFF")
        self._db.execute("PRAGMA synchronous = OFF")
        columns = ", ".join(f"h{n} INTEGER" for n in range(len(self.fields)))
        self._db.execute(f"CREATE TABLE first_rows (key TEXT PRIMARY KEY, line INTEGER, {columns}) WITHOUT ROWID")
        marks = ", ".join("?" * (len(self.fields) + 2))
        self._insert = f"INSERT INTO first_rows VALUES ({marks}) ON CONFLICT DO NOTHING"
        self._select = f"SELECT line, {', '.join(f'h{n}' for n in range(len(self.fields)))} FROM first_rows WHERE key = ?"
        self._db.execute("CREATE TABLE first_named (name TEXT PRIMARY KEY, key TEXT, line INTEGER) WITHOUT ROWID")

    def differ(self, key: str, line: int, values: Sequence[object]) -> tuple[int, list[str]] | None:
        """None when ``key`` is new here (remembered with ``line``) or its first row had these
        ``values``; else the first row's line and the fields that differ from it."""
        hashes = [hash(value) for value in values]
        if self._db.execute(self._insert, (key, line, *hashes)).rowcount:
            return None
        first_line, *first = self._db.execute(self._select, (key,)).fetchone()
        changed = [name for name, old, new in zip(self.fields, first, hashes, strict=True) if old != new]
        return (first_line, changed) if changed else None

    def first_naming(self, name: str, key: str, line: int) -> tuple[str, int]:
        """The key and line of the first row that gave ``name`` (an identifier): this row's
        (``key``, ``line``) when it is the first."""
        if self._db.execute("INSERT INTO first_named VALUES (?, ?, ?) ON CONFLICT DO NOTHING", (name, key, line)).rowcount:
            return key, line
        return self._db.execute("SELECT key, line FROM first_named WHERE name = ?", (name,)).fetchone()

    def close(self) -> None:
        self._db.close()
