"""The importer's batch statements: a fixed, small number per batch whatever its size.

The reads and writes are ``registry.arrays``' (each column one array parameter on PostgreSQL, ``IN``
lists and executemany on SQLite); this adds what only an import needs: the writer's transaction
settings and the per-key locks of keys without a unique constraint.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import Column, Row, Table, select
from sqlalchemy.orm import Session

from ..arrays import among, insert_rows, select_among, update_rows


class Bulk:
    """Bulk operations on one session's connection."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self.postgresql = session.get_bind().dialect.name == "postgresql"

    def begin_write(self) -> None:
        """Start the batch's transaction as a writer.

        PostgreSQL: the commit does not wait for its WAL flush (a crash may lose the last batches,
        never half of one; re-running the idempotent import restores them). SQLite: take the write
        lock now, before the batch reads, so a concurrent import cannot make what it read stale.
        """
        connection = self.session.connection()
        if self.postgresql:
            connection.exec_driver_sql("SET LOCAL synchronous_commit TO OFF")
        else:
            connection.exec_driver_sql("UPDATE institutions SET code = code WHERE 1 = 0")

    def lock_keys(self, namespace: str, keys: Iterable[str]) -> None:
        """PostgreSQL: hold a transaction lock per key (in one order), so that two writers cannot both
        create the learner that a key without a unique constraint (a birth certificate) names."""
        wanted = sorted({f"{namespace}:{k}" for k in keys})
        if self.postgresql and wanted:
            self.session.connection().exec_driver_sql(
                "SELECT pg_advisory_xact_lock(k) FROM "
                "(SELECT DISTINCT hashtextextended(v, 0) AS k FROM unnest(%(keys)b::text[]) AS v ORDER BY 1) AS s",
                {"keys": wanted},
            )

    def lock_by_id(self, table: Table, columns: Sequence[str], ids: Iterable[int]) -> list[Row[Any]]:
        """The ``columns`` of the rows with ``ids``, read once they are locked to the end of the batch
        (in id order, so two writers wait for each other instead of deadlocking): what another
        transaction committed before is what is read, and nothing changes them until the batch
        commits. SQLite: the batch holds the database's write lock already (``begin_write``)."""
        query = select(*(table.c[name] for name in columns)).where(among(self.session, table.c.id, ids))
        if self.postgresql:
            query = query.order_by(table.c.id).with_for_update()
        return list(self.session.execute(query))

    def select_in(self, columns: Sequence[Column[Any]], key: Column[Any], values: Iterable[Any]) -> list[Row[Any]]:
        """Rows whose ``key`` is one of ``values``."""
        return select_among(self.session, columns, key, values)

    def insert(
        self, table: Table, rows: list[dict[str, Any]], returning: Sequence[str] = (), order: Sequence[str] = ()
    ) -> list[Sequence[Any]]:
        """Insert ``rows`` (Python-side column defaults filled in); the ``returning`` columns of each.

        ``order``: unique-key columns to insert in ascending order, so that two writers inserting
        overlapping keys wait for each other instead of deadlocking.
        """
        return insert_rows(self.session, table, rows, returning, order)

    def update_by_id(self, table: Table, rows: list[dict[str, Any]], **same: Any) -> None:
        """Set columns by primary key ``id``: each row is ``{"id": …, column: value, …}``, and the
        ``same`` values for every row, written in id order (one lock order for every writer)."""
        update_rows(self.session, table, rows, **same)
