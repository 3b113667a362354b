"""Dialect-aware bulk statements: chunk locks, id allocation, COPY / executemany, updates.

Every function takes a Connection inside the chunk's transaction. SQL text comes from SQLAlchemy
constructs (or psycopg's `sql` composition for COPY identifiers); values are always bound.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator, Sequence
from functools import lru_cache
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from models.base import UtcDateTime

# Advisory-lock namespace of normalization ("zz"); the second key is the shard.
LOCK_NAMESPACE = 0x7A7A


def is_postgres(conn: Connection) -> bool:
    return conn.dialect.name == "postgresql"


def begin_locked(conn: Connection, *shards: int) -> None:
    """Start the chunk transaction holding the shards' write locks until it ends.

    PostgreSQL: a transaction-scoped advisory lock per shard, so two runs normalizing the same
    shard take turns chunk by chunk; several are taken in the order given (give them sorted:
    two transactions that each want several then never wait for each other in a cycle).
    SQLite: BEGIN IMMEDIATE takes the database write lock now, before the chunk reads its
    state, so no other writer can slip in between read and write.
    """
    if is_postgres(conn):
        for shard in shards:
            conn.execute(sa.select(sa.func.pg_advisory_xact_lock(LOCK_NAMESPACE, shard)))
    else:
        conn.exec_driver_sql("BEGIN IMMEDIATE")


def allocate_ids(conn: Connection, table: sa.Table, count: int) -> list[int]:
    """Ids for rows about to be inserted (sequence on PostgreSQL; max+1 under SQLite's lock)."""
    if count == 0:
        return []
    if is_postgres(conn):
        sequence = sa.func.pg_get_serial_sequence(table.name, "id")
        query = sa.select(sa.func.nextval(sequence)).select_from(sa.func.generate_series(1, count))
        return list(conn.execute(query).scalars())
    start = conn.execute(sa.select(sa.func.coalesce(sa.func.max(table.c.id), 0))).scalar_one()
    return list(range(start + 1, start + 1 + count))


def insert_rows(
    conn: Connection, table: sa.Table, columns: Sequence[str], rows: Sequence[Sequence[Any]]
) -> int:
    """Insert plain tuples of Python values (JSON columns as already-serialized text or None):
    COPY on PostgreSQL, the driver's executemany on SQLite."""
    if not rows:
        return 0
    if is_postgres(conn):
        _copy_rows(conn, table, columns, rows)
    else:
        compiled = table.insert().compile(dialect=conn.dialect, column_keys=list(columns))
        if list(compiled.positiontup or []) != list(columns):
            raise RuntimeError(f"unexpected parameter order for {table.name}")
        _run_many(conn, str(compiled), table, columns, rows)
    return len(rows)


def _copy_rows(
    conn: Connection, table: sa.Table, columns: Sequence[str], rows: Sequence[Sequence[Any]]
) -> None:
    from psycopg import sql as pgsql  # here: a SQLite run never loads the driver (11 MB)

    statement = pgsql.SQL("COPY {} ({}) FROM STDIN").format(
        pgsql.Identifier(table.name), pgsql.SQL(", ").join(map(pgsql.Identifier, columns))
    )
    cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
    with cursor.copy(statement) as copy:
        for row in rows:
            copy.write_row(row)


def _run_many(
    conn: Connection,
    statement: str,
    table: sa.Table,
    columns: Sequence[str],
    rows: Sequence[Sequence[Any]],
) -> None:
    """SQLite: the driver's executemany on tuples converted the way the column types store
    them, without per-row statement overhead. The rows are converted as the driver consumes
    them (a generator), so a chunk's rows are never held twice."""
    active = [
        (i, convert)
        for i, name in enumerate(columns)
        if (convert := sqlite_converter(table.c[name].type, conn.dialect)) is not None
    ]

    def converted() -> Iterator[tuple[Any, ...]]:
        for row in rows:
            values = list(row)
            for i, convert in active:
                if values[i] is not None:
                    values[i] = convert(values[i])
            yield tuple(values)

    cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
    try:
        cursor.executemany(statement, converted())
    finally:
        cursor.close()


@lru_cache(maxsize=4096)
def _sqlite_utc_text(value: dt.datetime) -> str:
    """UtcDateTime's SQLite storage text (naive UTC, microseconds), memoized: load times and
    fetch times repeat across thousands of rows."""
    if value.tzinfo is None:
        raise ValueError(f"naive datetime {value!r}: zizhi stores timezone-aware timestamps only")
    return value.astimezone(dt.UTC).replace(tzinfo=None).isoformat(" ", "microseconds")


def sqlite_converter(
    column_type: sa.types.TypeEngine[Any], dialect: sa.Dialect
) -> Callable[[Any], Any] | None:
    """Python value → SQLite storage value, as the column's SQLAlchemy type would bind it
    (fast paths for the hot types; JSON columns carry serialized text already)."""
    if isinstance(column_type, UtcDateTime):
        return _sqlite_utc_text
    if isinstance(column_type, sa.JSON):
        return None
    impl = column_type.dialect_impl(dialect)
    if isinstance(impl, sa.Date) and not isinstance(impl, sa.DateTime):
        return dt.date.isoformat
    if isinstance(impl, sa.Boolean):
        return int
    return impl.bind_processor(dialect)


def update_rows(
    conn: Connection,
    table: sa.Table,
    keys: Sequence[str],
    columns: Sequence[str],
    rows: Sequence[Sequence[Any]],
) -> int:
    """UPDATE table SET columns WHERE keys; one tuple per row (key values first, then columns)."""
    if not rows:
        return 0
    statement = (
        sa.update(table)
        .where(*(table.c[k] == sa.bindparam(f"k_{k}") for k in keys))
        .values({c: sa.bindparam(f"v_{c}") for c in columns})
    )
    params = [f"k_{k}" for k in keys] + [f"v_{c}" for c in columns]
    if is_postgres(conn):
        conn.execute(statement, [dict(zip(params, row, strict=True)) for row in rows])
        return len(rows)
    compiled = statement.compile(dialect=conn.dialect)
    names = [*keys, *columns]
    order = [params.index(p) for p in compiled.positiontup or []]
    _run_many(
        conn,
        str(compiled),
        table,
        [names[i] for i in order],
        [[row[i] for i in order] for row in rows],
    )
    return len(rows)


def delete_where_in(conn: Connection, table: sa.Table, column: str, values: Sequence[Any]) -> int:
    """DELETE rows whose column is in values (bound, in slices the drivers accept)."""
    deleted = 0
    for start in range(0, len(values), 5000):
        part = list(values[start : start + 5000])
        result = conn.execute(sa.delete(table).where(table.c[column].in_(part)))
        deleted += result.rowcount or 0
    return deleted
