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
from sqlalchemy.orm import Session


def _plain(value: Any) -> Any:
    return value.value if isinstance(value, Enum) else value


class Bulk:
    """Bulk operations on one session's connection."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self.dialect = session.get_bind().dialect
        self.postgresql = self.dialect.name == "postgresql"

    def relax_durability(self) -> None:
        """PostgreSQL: this transaction's commit does not wait for its WAL flush. A crash may lose
        the last batches, never half of one; re-running the (idempotent) import restores them."""
        if self.postgresql:
            self.session.connection().exec_driver_sql("SET LOCAL synchronous_commit TO OFF")

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

    def insert(self, table: Table, rows: list[dict[str, Any]], returning: Sequence[str] = ()) -> list[Row[Any]]:
        """Insert ``rows`` (Python-side column defaults filled in); the ``returning`` columns of each."""
        if not rows:
            return []
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
        params = {n: [_plain(r[n]) for r in rows] for n in names}
        params.update({f"c_{n}": _plain(v) for n, v in constants.items()})
        result = self.session.connection().exec_driver_sql(sql, params)
        return list(result.all()) if returning else []

    def update_by_id(self, table: Table, rows: list[dict[str, Any]]) -> None:
        """Set columns by primary key ``id``: each row is ``{"id": …, column: value, …}``."""
        if not rows:
            return
        constants = _defaults(table, rows[0], "onupdate")
        names = [n for n in rows[0] if n != "id"]
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
        params = {n: [_plain(r[n]) for r in rows] for n in all_names}
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
