"""Dagster event-log storage that writes a run's per-partition asset events in batches.

A refresh covers 32 shards, and Dagster records a planned and a materialization event for every
asset and shard: 6 partitioned assets make ~390 events a run. The stock storages write each event
on its own connection and commit (~20 ms apiece on SQLite, most of Dagster's overhead in a
refresh). Dagster already hands such events over in batches when DAGSTER_EVENT_BATCH_SIZE is set;
dagster-postgres then batches materializations but still writes planned events one by one, and
the SQLite storage writes every batch one by one. These subclasses write a batch of planned or
materialization events as one multi-row insert into the event log (`_inserted_ids`), then index
it the way dagster-postgres indexes a materialization batch: the asset-event tags of every
event, and the asset-key row from each key's last event (the only one that row keeps). Every
other event (~60 a run: step starts and ends, outputs, checks, log lines) goes the stock way,
made cheaper: on SQLite each file keeps its connection open, so a commit appends to the WAL
instead of closing the file with a checkpoint and disk syncs (`_shard_engine`), and a new run's
file is a copy of a template (`_initdb`); on PostgreSQL an asset or check event and its index
rows commit together instead of in 3-4 autocommits, none waiting for a disk sync (`_writes`).
Both remember the schema Dagster would otherwise look up before nearly every such event
(`_KnownSchema`).

Equivalence with the stock storage is tested (tests/dagster/test_event_storage.py): the same run
leaves the same events, materialized and failed partitions. The classes use Dagster internals
(the storage base classes and the event-log table), so the test is the guard when Dagster is
upgraded.
"""

from __future__ import annotations

import itertools
import os
import shutil
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import Any

import dagster as dg
import sqlalchemy as sa
from dagster._core.events import ASSET_CHECK_EVENTS, ASSET_EVENTS
from dagster._core.storage.event_log.base import EventHandlerFn
from dagster._core.storage.event_log.schema import SqlEventLogStorageTable
from dagster._core.storage.event_log.sql_event_log import SqlEventLogStorage
from dagster._core.storage.event_log.sqlite.sqlite_event_log import (
    INDEX_SHARD_NAME,
    SqliteEventLogStorage,
    SqliteEventLogStorageWatchdog,
)
from dagster._core.storage.sqlite import SQLITE_BUSY_TIMEOUT_SECONDS
from dagster._serdes import ConfigurableClassData
from dagster_postgres.event_log.event_log import PostgresEventLogStorage
from dagster_postgres.utils import (
    create_pg_connection,
    create_pg_engine,
    get_token_provider_from_config,
    pg_url_from_config,
)
from sqlalchemy import Connection, Engine
from watchdog.events import FileSystemEvent, PatternMatchingEventHandler
from watchdog.observers import Observer

# Dagster reads this in every process that writes events; the storage sets it (unless the
# deployment already did) because only these classes make batches worth having.
EVENT_BATCH_SIZE = "1000"
# Events that also write index rows (asset events, asset-check events).
INDEXED_EVENTS = frozenset(ASSET_EVENTS | ASSET_CHECK_EVENTS)
BATCHED_EVENTS = frozenset(
    {dg.DagsterEventType.ASSET_MATERIALIZATION, dg.DagsterEventType.ASSET_MATERIALIZATION_PLANNED}
)


# Engines kept (the index and the newest runs'); the webserver reads many runs' files.
MAX_CACHED_ENGINES = 32


def _shard_engine(url: str) -> Engine:
    """An engine for one SQLite file of the event log that keeps its connection open.

    Dagster opens and closes a connection for every use; closing the last connection to a WAL
    database checkpoints it (writes the WAL back into the file and syncs both), so every event
    cost a few disk syncs. Kept open, a commit appends to the WAL; with synchronous=NORMAL (what
    SQLite recommends for WAL) it is not synced either: a committed event survives the process
    crashing, and only a power loss or OS crash may lose the newest ones. The database stays
    consistent either way."""
    engine = sa.create_engine(
        url,
        poolclass=sa.pool.QueuePool,
        pool_size=1,  # one use at a time (`_connect` holds the storage's lock)...
        max_overflow=4,  # ...but creating a database opens a second connection
        connect_args={"timeout": SQLITE_BUSY_TIMEOUT_SECONDS},
    )
    sa.event.listen(engine, "connect", _relaxed_sync)
    return engine


def _relaxed_sync(dbapi_connection: Any, _record: Any) -> None:
    # WAL before anything else: Dagster switches a new run's file to WAL only after creating its
    # ~20 tables and indexes, each a commit synced to disk in the default journal mode.
    dbapi_connection.execute("PRAGMA journal_mode=WAL")
    dbapi_connection.execute("PRAGMA synchronous=NORMAL")


class _WalWatchdog(SqliteEventLogStorageWatchdog):
    """Dagster's watchdog of one run's file, woken by a change of the file or of its WAL."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        PatternMatchingEventHandler.__init__(
            self, patterns=[self._log_path, f"{self._log_path}-wal"]
        )

    def on_modified(self, event: FileSystemEvent) -> None:
        self._process_log()


def _asynchronous_commit(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("SET synchronous_commit TO OFF")
    cursor.close()
    dbapi_connection.commit()  # before SQLAlchemy switches the connection to autocommit


def enable_event_batches() -> None:
    os.environ.setdefault("DAGSTER_EVENT_BATCH_SIZE", EVENT_BATCH_SIZE)


def _groups(
    events: Sequence[dg.EventLogEntry],
) -> list[tuple[dg.DagsterEventType | None, list[dg.EventLogEntry]]]:
    """Consecutive runs of events of one batchable type (None: the others), in order — a batch
    mixes in check events, and "the last event of a key" is only right within one type."""

    def kind(event: dg.EventLogEntry) -> dg.DagsterEventType | None:
        batchable = event.dagster_event_type in BATCHED_EVENTS and event.dagster_event is not None
        return event.dagster_event_type if batchable else None

    return [(key, list(group)) for key, group in itertools.groupby(events, key=kind)]


def _inserted_ids(conn: Connection, rows: list[dict[str, Any]]) -> list[int]:
    """Insert event-log rows; their ids, in the order of `rows`.

    One INSERT of many VALUES (Dagster's `prepare_insert_event_batch`) is compiled anew for
    every batch, ~20 ms for a run's planned events; SQLAlchemy's insertmanyvalues reuses one
    compiled row and still sends the rows in a few statements."""
    insert = SqlEventLogStorageTable.insert().returning(
        SqlEventLogStorageTable.c.id, sort_by_parameter_order=True
    )
    return [row[0] for row in conn.execute(insert, rows)]


def _index(
    storage: SqlEventLogStorage, conn: Connection, events: list[dg.EventLogEntry], ids: list[int]
) -> None:
    """What storing each event would add to the index: tags, and the asset-key row (last wins)."""
    storage._store_asset_event_tags(conn, events, ids)
    last: dict[dg.AssetKey, tuple[dg.EventLogEntry, int]] = {}
    for event, event_id in zip(events, ids, strict=True):
        last[event.get_dagster_event().asset_key] = (event, event_id)  # type: ignore[index]
    for event, event_id in last.values():
        storage._store_asset_event(conn, event, event_id)


class _KnownSchema(SqlEventLogStorage):
    """Remembers which tables and asset-key columns the index has.

    Dagster asks the database before most writes and many reads: `supports_asset_checks` (a
    table lookup) for every check event, the asset-key columns (a column listing) for every
    asset event, `has_table` before tag writes; on SQLite each lookup also creates an engine. A
    table or column once there stays (only a migration adds one, `wipe` empties tables), so a
    yes is kept for the storage's life and a no is asked again."""

    def has_table(self, table_name: str) -> bool:
        known = self.__dict__.setdefault("_known_tables", set())
        # The concrete storage after this class in the MRO implements it.
        if table_name not in known and super().has_table(table_name):  # type: ignore[safe-super]
            known.add(table_name)
        return table_name in known

    def _has_asset_key_col_on_connection(self, conn: Connection, column_name: str) -> bool:
        known = self.__dict__.setdefault("_known_asset_key_columns", set())
        if column_name not in known and super()._has_asset_key_col_on_connection(conn, column_name):
            known.add(column_name)
        return column_name in known


class BatchingSqliteEventLogStorage(_KnownSchema, SqliteEventLogStorage):
    """The embedded instance's event log (`deploy/dagster.yaml`). Configured with `home`, the
    instance folder (DAGSTER_HOME); it keeps its files where Dagster's own SQLite storage
    does, in `<home>/history/runs`."""

    def __init__(self, base_dir: str, inst_data: ConfigurableClassData | None = None) -> None:
        enable_event_batches()
        self._shard_engines: dict[str, Engine] = {}  # by shard, least recently used first
        super().__init__(base_dir, inst_data=inst_data)

    @contextmanager
    def _connect(self, shard: str) -> Iterator[Connection]:
        """Dagster's `_connect`, keeping each shard's engine and its one connection open (see
        `_shard_engine`) instead of creating an engine and opening a connection for every use."""
        with self._db_lock:
            engine = self._shard_engines.pop(shard, None)
            if engine is None:
                engine = _shard_engine(self.conn_string_for_shard(shard))
            self._shard_engines[shard] = engine  # most recently used last
            while len(self._shard_engines) > MAX_CACHED_ENGINES:
                self._shard_engines.pop(next(iter(self._shard_engines))).dispose()
            if shard not in self._initialized_dbs:
                self._initdb(engine)
                self._initialized_dbs.add(shard)
            with engine.connect() as conn, conn.begin():
                yield conn

    def _initdb(self, engine: Engine, for_index_shard: bool = False) -> None:
        """Dagster's `_initdb`, without loading its ~90 alembic scripts where it need not.

        Dagster loads them on each file's first use in a process to compare revisions, and does
        nothing when the file has one; a new run's file it fills with tables and indexes and
        stamps (a second load): ~50-150 ms a run. Here a stamped file is left alone as Dagster
        would leave it, and a new run's file is a copy of a template that Dagster's `_initdb`
        made once per Dagster version (`_copy_template`)."""
        path = engine.url.database or ""
        is_run = not for_index_shard and os.path.basename(path) != f"{INDEX_SHARD_NAME}.db"
        if is_run and not os.path.exists(path) and self._copy_template(path):
            return
        with engine.connect() as conn:
            stamped = sa.inspect(conn).has_table("alembic_version") and (
                conn.exec_driver_sql("SELECT version_num FROM alembic_version").first()
            )
        if not stamped:
            super()._initdb(engine, for_index_shard=for_index_shard)

    def _copy_template(self, path: str) -> bool:
        """Put a copy of the run-file template at `path`; False if a file got there first (or
        the file system cannot link), and Dagster's `_initdb` then does as it always did."""
        template = os.path.join(self._base_dir, f"run-template-{dg.__version__}.sqlite")
        unique = f"{os.getpid()}-{threading.get_ident()}.tmp"
        try:
            if not os.path.exists(template):
                made = f"{template}.{unique}"
                engine = sa.create_engine(f"sqlite:///{made}", poolclass=sa.pool.NullPool)
                try:
                    SqliteEventLogStorage._initdb(self, engine)  # Dagster's own
                    with engine.connect() as conn:  # all of it in the file, none in a WAL
                        conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
                finally:
                    engine.dispose()
                os.replace(made, template)
            copied = f"{path}.{unique}"
            shutil.copyfile(template, copied)
            try:
                os.link(copied, path)  # never over a file another process has just made
            finally:
                os.unlink(copied)
        except OSError:
            return False
        return True

    def watch(self, run_id: str, cursor: str | None, callback: EventHandlerFn) -> None:
        """Dagster's watch (the UI's live event log), also woken by writes to the run's WAL file:
        a writer that keeps its connection open appends to `<run>.db-wal` and leaves `<run>.db`
        alone until a checkpoint."""
        observer: Any = self._obs  # Dagster declares it None until the first watch
        if observer is None:
            observer = Observer()
            observer.start()
            self._obs = observer
        watchdog = _WalWatchdog(self, run_id, callback, cursor)
        self._watchers[run_id][callback] = (
            watchdog,
            observer.schedule(watchdog, self._base_dir, recursive=True),
        )

    @classmethod
    def config_type(cls) -> Any:
        return {"home": dg.StringSource}

    @classmethod
    def from_config_value(
        cls, inst_data: ConfigurableClassData | None, config_value: Mapping[str, Any]
    ) -> BatchingSqliteEventLogStorage:
        return cls(os.path.join(config_value["home"], "history", "runs"), inst_data=inst_data)

    def store_event_batch(self, events: Sequence[dg.EventLogEntry]) -> None:
        for kind, group in _groups(events):
            if kind is None or len({event.run_id for event in group}) != 1:
                super().store_event_batch(group)
                continue
            rows = [self._event_to_row(event) for event in group]
            with self.run_connection(group[0].run_id) as conn:
                conn.execute(SqlEventLogStorageTable.insert(), rows)
            try:
                with self.index_transaction() as conn:
                    _index(self, conn, group, _inserted_ids(conn, rows))
            except Exception:
                # The events are in the run's log already: index them one at a time rather than
                # raise (Dagster would then store the whole batch again, twice in the run's log).
                for event, row in zip(group, rows, strict=True):
                    with self.index_transaction() as conn:
                        _index(self, conn, [event], _inserted_ids(conn, [row]))

    def _dispose_engines(self) -> None:
        with self._db_lock:
            engines, self._shard_engines = list(self._shard_engines.values()), {}
        for engine in engines:
            engine.dispose()

    def dispose(self) -> None:
        super().dispose()
        self._dispose_engines()

    def wipe(self) -> None:
        self._dispose_engines()  # closed before their files are deleted
        super().wipe()
        self._dispose_engines()


class BatchingPostgresEventLogStorage(_KnownSchema, PostgresEventLogStorage):
    """dagster-postgres' event log, with planned events batched as it batches materializations,
    on a pooled connection (`deploy/dagster.production.yaml`)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        enable_event_batches()
        self._writing = threading.local()  # the connection of the write under way, per thread
        super().__init__(*args, **kwargs)
        # dagster-postgres opens a connection per write (NullPool). A run writes ~70 events one
        # at a time even with batches (step starts, outputs, checks); keep one connection open
        # (more while threads need them) as dagster-postgres does in the webserver.
        self._engine.dispose()
        self._engine = self._pooled_engine()
        # Event writes go through their own connection, whose commits do not wait for the WAL
        # flush (see `_writes`).
        self._writer = self._pooled_engine()
        sa.event.listen(self._writer, "connect", _asynchronous_commit)

    def _pooled_engine(self) -> Engine:
        return create_pg_engine(
            self.postgres_url,
            self._token_provider,
            isolation_level="AUTOCOMMIT",
            pool_size=1,
            max_overflow=8,
            pool_recycle=3600,
            pool_pre_ping=True,
        )

    @classmethod
    def from_config_value(
        cls, inst_data: ConfigurableClassData | None, config_value: Mapping[str, Any]
    ) -> BatchingPostgresEventLogStorage:
        return cls(
            postgres_url=pg_url_from_config(config_value),
            should_autocreate_tables=config_value.get("should_autocreate_tables", True),
            inst_data=inst_data,
            token_provider=get_token_provider_from_config(config_value),
        )

    def _connect(self) -> AbstractContextManager[Connection]:
        """The connection of the write under way in this thread (`_writes`), else a connection
        of the pool as dagster-postgres gives it."""
        conn = getattr(self._writing, "conn", None)
        return nullcontext(conn) if conn is not None else super()._connect()

    @contextmanager
    def _writes(self, *, transaction: bool) -> Iterator[None]:
        """Every statement of the block (an event's writes) on the writer connection, in one
        transaction when `transaction`.

        dagster-postgres writes in autocommit: an asset or check event is its INSERT, a NOTIFY
        and its index rows, each committed on its own and the index rows on a second
        connection. In one transaction they commit together, or not at all: a batch that fails
        leaves nothing behind, and Dagster then stores its events one by one, each once. (Any
        other event stays an INSERT and a NOTIFY in autocommit: fewer round trips.)

        The writer's commits do not wait for the WAL flush (synchronous_commit=off), which
        cost a run ~60 disk syncs, a few ms each on a busy server. An event is then durable
        ~0.6 s after its commit (3 × wal_writer_delay): if the PostgreSQL server itself
        crashes in between, the newest events may be missing from the log, never half written
        (the same trade as synchronous=NORMAL for the SQLite storage). Only event writes are
        asynchronous: run records, concurrency slots and zizhi's database commit as before."""
        if getattr(self._writing, "conn", None) is not None:
            yield
            return
        with create_pg_connection(self._writer) as conn:
            if transaction:
                conn = conn.execution_options(isolation_level="READ COMMITTED")
            with conn.begin() if transaction else nullcontext():
                self._writing.conn = conn
                try:
                    yield
                finally:
                    self._writing.conn = None

    def store_event(self, event: dg.EventLogEntry) -> None:
        with self._writes(transaction=event.dagster_event_type in INDEXED_EVENTS):
            super().store_event(event)

    def store_event_batch(self, events: Sequence[dg.EventLogEntry]) -> None:
        with self._writes(transaction=True):
            for kind, group in _groups(events):
                if kind is None:
                    super().store_event_batch(group)
                    continue
                rows = [self._event_to_row(event) for event in group]
                with self._connect() as conn:
                    _index(self, conn, group, _inserted_ids(conn, rows))

    def optimize_for_webserver(
        self, statement_timeout: int, pool_recycle: int, max_overflow: int
    ) -> None:
        pooled = self._engine
        super().optimize_for_webserver(statement_timeout, pool_recycle, max_overflow)
        pooled.dispose()

    def dispose(self) -> None:
        super().dispose()
        self._engine.dispose()
        self._writer.dispose()
