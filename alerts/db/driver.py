"""SQL run straight on the driver, inside a session's transaction, for the one write that sits
between a price crossing and its alert (the engine's recording of hits).

Through SQLAlchemy each statement of that write cost about 100 µs of CPU before the driver
saw it (finding the compiled form, processing every parameter and row), the driver about
15: ten alerts on one push took 2 ms to record, while the alerts waited. Here the SQL is
written once for both databases (`?` placeholders, made `%s` for psycopg) and values are
converted by the columns' own SQLAlchemy types, so what is stored reads back through the
models exactly as if SQLAlchemy had written it.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from sqlalchemy import Column, Dialect, Table
from sqlmodel import Session

Converter = Callable[[Any], Any]

# By table, column, dialect and direction (columns compare as SQL expressions, not values).
_converters: dict[tuple[str, str, str, bool], Converter] = {}


def _same(value: Any) -> Any:
    return value


def _converter(column: Column[Any], dialect: Dialect, to_driver: bool) -> Converter:
    key = (column.table.name, column.name, dialect.name, to_driver)
    found = _converters.get(key)
    if found is None:
        impl = column.type.dialect_impl(dialect)
        if to_driver:
            found = impl.bind_processor(dialect) or _same
        else:
            found = impl.result_processor(dialect, None) or _same
        _converters[key] = found
    return found


# Rows per INSERT statement: far below either database's limit on parameters.
CHUNK = 500


@functools.lru_cache(maxsize=512)
def _placeholders(sql: str, postgresql: bool) -> str:
    return sql.replace("?", "%s") if postgresql else sql


@functools.lru_cache(maxsize=512)
def _insert_sql(
    table: str, columns: tuple[str, ...], count: int, returning: tuple[str, ...], key: str | None
) -> str:
    # Names from the tables' metadata only; every value is a parameter.
    names = ", ".join(f'"{c}"' for c in columns)
    sql = f'INSERT INTO "{table}" ({names}) VALUES {marks(count, len(columns))}'  # noqa: S608
    if key is not None:
        updates = ", ".join(f'"{c}" = excluded."{c}"' for c in columns if c != key)
        sql += f' ON CONFLICT ("{key}") DO UPDATE SET {updates}'
    if returning:
        sql += " RETURNING " + ", ".join(f'"{c}"' for c in returning)
    return sql


def marks(count: int, width: int = 1) -> str:
    """`count` rows of `width` placeholders: `?, ?` or `(?, ?), (?, ?)`."""
    if width == 1:
        return ", ".join("?" * count)
    row = "(" + ", ".join("?" * width) + ")"
    return ", ".join([row] * count)


class Cursor:
    """The session's own driver connection (same transaction), for SQL written with `?`."""

    def __init__(self, session: Session) -> None:
        connection = session.connection()
        self.dialect = connection.dialect
        self._postgresql = self.dialect.name == "postgresql"
        self._cursor = connection.connection.dbapi_connection.cursor()  # type: ignore[union-attr]

    def rows(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Run a statement; its rows, if it returns any."""
        cursor = self._cursor
        cursor.execute(_placeholders(sql, self._postgresql), params)
        return list(cursor.fetchall()) if cursor.description else []

    def many(self, sql: str, params: Iterable[Sequence[Any]]) -> None:
        """Run a statement once per set of parameters."""
        self._cursor.executemany(_placeholders(sql, self._postgresql), list(params))

    def insert(
        self,
        table: Table,
        columns: tuple[str, ...],
        rows: Sequence[Sequence[Any]],
        *,
        returning: tuple[str, ...] = (),
        key: str | None = None,
    ) -> list[tuple[Any, ...]]:
        """Insert `rows` (values of `columns`, as the models hold them), a few hundred to a
        statement; with `key`, a row whose key exists updates that row instead. Returns the
        `returning` columns of every row, as the models hold them, in no set order."""
        to_driver = [self.to_driver(table.c[c]) for c in columns]
        back = [self.from_driver(table.c[c]) for c in returning]
        returned: list[tuple[Any, ...]] = []
        for start in range(0, len(rows), CHUNK):
            chunk = rows[start : start + CHUNK]
            params = [f(v) for row in chunk for f, v in zip(to_driver, row, strict=True)]
            sql = _insert_sql(table.name, columns, len(chunk), returning, key)
            for row in self.rows(sql, params):
                returned.append(tuple(convert(v) for convert, v in zip(back, row, strict=True)))
        return returned

    def to_driver(self, column: Column[Any]) -> Converter:
        """What turns a value into what the driver stores for `column`."""
        return _converter(column, self.dialect, True)

    def from_driver(self, column: Column[Any]) -> Converter:
        """What turns a value the driver read from `column` back into the model's."""
        return _converter(column, self.dialect, False)
