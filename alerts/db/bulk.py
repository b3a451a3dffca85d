"""Statements over many rows whose text does not grow with the rows: the outbox's inserts and
the recorder's lookups and updates, written once in SQLAlchemy Core for both databases.

On PostgreSQL a list of values is one array parameter (`id = ANY(:ids)`, `unnest(:column)`),
so the statement, and psycopg's work on it, is the same for ten rows or ten thousand (a
10,000-row multi-VALUES INSERT cost psycopg ~0.8 s of parsing alone). New rows take their ids
from the table's sequence first, so each row's id is known without relying on the order of
RETURNING. On SQLite, whose driver does no such work, a list is an expanding `IN (…)` and new
rows go in through the driver's executemany (SQLAlchemy's INSERT … RETURNING in parameter
order ran a statement per row, ~0.2 ms each), their ids following from the last one."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

from sqlalchemy import (
    ColumnElement,
    Connection,
    String,
    Table,
    any_,
    bindparam,
    func,
    insert,
    select,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.types import TypeEngine
from sqlmodel.sql.sqltypes import AutoString

DIALECTS = ("postgresql", "sqlite")
T = TypeVar("T")


def per_dialect(build: Callable[[str], T]) -> dict[str, T]:
    """A statement built once for each database."""
    return {dialect: build(dialect) for dialect in DIALECTS}


def _array(type_: TypeEngine[Any]) -> ARRAY[Any]:
    """An array of `type_`; of unbounded strings for a string column, since a cast to
    `VARCHAR(n)[]` would cut longer values short where the column itself refuses them."""
    return ARRAY(String() if isinstance(type_, String | AutoString) else type_)


def one_of(column: ColumnElement[Any], name: str, dialect: str) -> ColumnElement[bool]:
    """`column` is one of the list given as parameter `name`."""
    if dialect == "postgresql":
        return column == any_(bindparam(name, type_=_array(column.type)))
    return column.in_(bindparam(name, expanding=True))


_LAST_ID = select(func.last_insert_rowid())


class Inserter:
    """Many rows into one table in two statements at most, answering their ids in order."""

    def __init__(self, table: Table, columns: Sequence[str]) -> None:
        self.columns = list(columns)
        key = table.c.id
        # PostgreSQL: ids from the sequence, then every column as an array through unnest.
        self._ids = select(func.nextval(func.pg_get_serial_sequence(table.name, key.name)))
        self._ids = self._ids.select_from(func.generate_series(1, bindparam("n")))
        arrays = [func.unnest(bindparam(key.name, type_=_array(key.type)))]
        arrays += [func.unnest(bindparam(c, type_=_array(table.c[c].type))) for c in self.columns]
        self._unnest = insert(table).from_select([key.name, *self.columns], select(*arrays))
        # SQLite: the driver's executemany, then the last id it gave.
        self._values = insert(table)

    def __call__(self, conn: Connection, rows: Sequence[Mapping[str, Any]]) -> list[int]:
        """Insert `rows` (each with every column named at construction); their new ids."""
        if not rows:
            return []
        if conn.dialect.name != "postgresql":
            # One writer at a time holds SQLite's write lock from the first row to the end of
            # the transaction, and SQLite gives each new row one more than the largest id in
            # the table: the rows got consecutive ids, in order, ending with the last one.
            if len(rows) == 1:
                last = conn.execute(self._values, rows[0]).lastrowid
            else:
                conn.execute(self._values, list(rows))
                last = conn.execute(_LAST_ID).scalar_one()
            return list(range(last - len(rows) + 1, last + 1))
        ids = list(conn.execute(self._ids, {"n": len(rows)}).scalars())
        arrays: dict[str, list[Any]] = {c: [row[c] for row in rows] for c in self.columns}
        conn.execute(self._unnest, {"id": ids, **arrays})
        return ids
