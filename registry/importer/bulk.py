"""Bulk reads and writes with a fixed, small number of statements per batch.

PostgreSQL gets each column as one array parameter (``= ANY(:keys)``, ``INSERT … SELECT FROM
unnest(…)``, ``UPDATE … FROM unnest(…)``): one short statement whatever the batch size, which psycopg
parses once. SQLite gets ``IN`` lists and the driver's ``executemany``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from enum import Enum
from typing import Any

from sqlalchemy import Column, Row, Table, bindparam, insert, select, update
from sqlalchemy import Enum as SqlEnum
from sqlalchemy.orm import Session


def _plain(value: Any) -> Any:
    return value.value if isinstance(value, Enum) else value


def _column(rows: list[dict[str, Any]], name: str, column: Column[Any]) -> list[Any]:
    """One column of ``rows`` as a list (enum members as their values)."""
    if isinstance(column.type, SqlEnum):
        return [_plain(r[name]) for r in rows]
    return [r[name] for r in rows]


class Bulk:
    """Bulk operations on one session's connection."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self.dialect = session.get_bind().dialect
        self.postgresql = self.dialect.name == "postgresql"

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

    def select_in(self, columns: Sequence[Column[Any]], key: Column[Any], values: Iterable[Any]) -> list[Row[Any]]:
        """Rows whose ``key`` is one of ``values``."""
        wanted = list(dict.fromkeys(values))
        if not wanted:
            return []
        if self.postgresql:
            names = ", ".join(f'"{c.name}"' for c in columns)
            sql = f'SELECT {names} FROM "{key.table.name}" WHERE "{key.name}" = ANY({self._array("keys", key)})'  # type: ignore[attr-defined]
            return list(self.session.connection().exec_driver_sql(sql, {"keys": [_plain(v) for v in wanted]}).all())
        return list(self.session.execute(select(*columns).where(key.in_(wanted))))

    def insert(
        self, table: Table, rows: list[dict[str, Any]], returning: Sequence[str] = (), order: Sequence[str] = ()
    ) -> list[Row[Any]]:
        """Insert ``rows`` (Python-side column defaults filled in); the ``returning`` columns of each.

        ``order``: unique-key columns to insert in ascending order, so that two writers inserting
        overlapping keys wait for each other instead of deadlocking.
        """
        if not rows:
            return []
        if order:
            rows = sorted(rows, key=lambda r: tuple(r[n] for n in order))
        constants = _defaults(table, rows[0], "default")
        if not self.postgresql:
            statement = insert(table)
            full = [{**row, **constants} for row in rows]
            if returning:
                return list(self.session.execute(statement.returning(*(table.c[n] for n in returning)), full))
            self.session.execute(statement, full)
            return []
        names = list(rows[0])
        arrays = ", ".join(self._array(n, table.c[n]) for n in names)
        scalars = "".join(f", {self._scalar(f'c_{n}', table.c[n])}" for n in constants)
        sql = (
            f'INSERT INTO "{table.name}" ({_quoted([*names, *constants])}) '
            f"SELECT v.*{scalars} FROM unnest({arrays}) AS v"
        )
        if returning:
            sql += f" RETURNING {_quoted(returning)}"
        params = {n: _column(rows, n, table.c[n]) for n in names}
        params.update({f"c_{n}": _plain(v) for n, v in constants.items()})
        result = self.session.connection().exec_driver_sql(sql, params)
        return list(result.all()) if returning else []

    def update_by_id(self, table: Table, rows: list[dict[str, Any]]) -> None:
        """Set columns by primary key ``id``: each row is ``{"id": …, column: value, …}``."""
        if not rows:
            return
        constants = _defaults(table, rows[0], "onupdate")
        names = [n for n in rows[0] if n != "id"]
        rows = sorted(rows, key=lambda r: r["id"])  # one lock order for every writer
        if not self.postgresql:
            statement = (
                update(table)
                .where(table.c.id == bindparam("b_id"))
                .values({n: bindparam(f"b_{n}") for n in (*names, *constants)})
            )
            self.session.execute(statement, [{f"b_{k}": v for k, v in {**r, **constants}.items()} for r in rows])
            return
        all_names = ["id", *names]
        sets = [f'"{n}" = v."{n}"' for n in names]
        sets += [f'"{n}" = {self._scalar(f"c_{n}", table.c[n])}' for n in constants]
        sql = (
            f'UPDATE "{table.name}" AS t SET {", ".join(sets)} '
            f"FROM unnest({', '.join(self._array(n, table.c[n]) for n in all_names)}) AS v({_quoted(all_names)}) "
            "WHERE t.id = v.id"
        )
        params = {n: _column(rows, n, table.c[n]) for n in all_names}
        params.update({f"c_{n}": _plain(v) for n, v in constants.items()})
        self.session.connection().exec_driver_sql(sql, params)

    def _array(self, param: str, column: Column[Any]) -> str:
        # %(name)b: psycopg sends the array in binary, several times faster than text for big batches
        return f"CAST(%({param})b AS {column.type.compile(self.dialect)}[])"

    def _scalar(self, param: str, column: Column[Any]) -> str:
        return f"CAST(%({param})s AS {column.type.compile(self.dialect)})"


def _quoted(names: Iterable[str]) -> str:
    return ", ".join(f'"{n}"' for n in names)


def _defaults(table: Table, row: dict[str, Any], which: str) -> dict[str, Any]:
    """Values of the table's Python-side ``default`` (inserts) or ``onupdate`` (updates) for the
    columns ``row`` leaves out: one value for the whole batch (``utcnow`` is called once)."""
    values: dict[str, Any] = {}
    for column in table.columns:
        spec = getattr(column, which)
        if spec is None or column.name in row or column.primary_key:
            continue
        if spec.is_scalar:
            values[column.name] = spec.arg
        elif spec.is_callable:
            values[column.name] = spec.arg(None)
    return values
