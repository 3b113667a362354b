"""The batching event-log storage (pipelines/event_storage.py) records what Dagster's own storage
records: the same events, materialized partitions, planned runs and failed partitions, in far
fewer writes."""

from __future__ import annotations

import collections
import contextlib
import logging
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import dagster as dg
import pytest
from dagster._core.storage.event_log.sqlite.sqlite_event_log import SqliteEventLogStorage
from dagster._core.utils import make_new_run_id
from dagster_postgres.event_log.event_log import PostgresEventLogStorage

from pipelines import event_storage
from pipelines.db import PROJECT_ROOT
from pipelines.definitions import defs
from pipelines.event_storage import BatchingPostgresEventLogStorage, BatchingSqliteEventLogStorage
from pipelines.juhe.assets import NORMALIZED_TABLES
from tests.conftest import wait_until
from tests.dagster.helpers import (
    production_instance,
    run_refresh,
    write_roster,
    zizhi_instance,
)
from tests.fixtures_db import create_pg_database, drop_pg_database, is_postgres

# Heavy or timing-sensitive: one xdist worker runs this group in sequence (see run_suites.sh).
pytestmark = pytest.mark.xdist_group("heavy")

PARTITIONED = ["qualification_responses", *NORMALIZED_TABLES]
SHARDS = ["00", "01", "02"]


@pytest.fixture
def roster(sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = write_roster(tmp_path / "roster.csv", sandbox.dataset.companies[:30])
    monkeypatch.setenv("ROSTER_PATH", str(path))
    monkeypatch.setenv("JUHE_QPS", "200")
    return path


@contextmanager
def instance_of(kind: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator:
    if kind == "stock":
        with dg.instance_for_test() as instance:
            yield instance
    elif kind == "batching":
        with zizhi_instance(tmp_path / kind) as instance:
            assert isinstance(instance.event_log_storage, BatchingSqliteEventLogStorage)
            yield instance
    else:  # the production setup, dagster-postgres with batching
        url = create_pg_database("zizhi_dagster_events")
        monkeypatch.setenv("DAGSTER_PG_URL", url)
        try:
            with production_instance() as instance:
                assert isinstance(instance.event_log_storage, BatchingPostgresEventLogStorage)
                yield instance
        finally:
            drop_pg_database(url)


def kinds() -> list[str]:
    return ["stock", "batching", "production"] if is_postgres() else ["stock", "batching"]


def asset_events(instance: dg.DagsterInstance, run_id: str) -> collections.Counter:
    """(event type, asset, partition) of every asset event the run recorded."""
    found: collections.Counter = collections.Counter()
    for entry in instance.all_logs(run_id):
        event = entry.dagster_event
        if event is not None and event.asset_key is not None:
            found[event.event_type_value, event.asset_key.to_user_string(), event.partition] += 1
    return found


def partition_status(instance: dg.DagsterInstance, asset: str) -> dict[str, str]:
    key = dg.AssetKey(asset)
    partitions_def = defs.resolve_assets_def(key).partitions_def
    statuses = instance.get_status_by_partition(
        key, partitions_def.get_partition_keys(), partitions_def
    )
    return {shard: status.value for shard, status in (statuses or {}).items() if status}


def test_a_refresh_records_the_same_events_and_partitions_as_dagsters_storage(
    engine, sandbox, roster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen = {}
    for kind in kinds():
        with instance_of(kind, tmp_path, monkeypatch) as instance:
            result = run_refresh(instance, first=SHARDS[0], last=SHARDS[-1], force=True)
            assert result.success
            events = asset_events(instance, result.run_id)
            for asset in PARTITIONED:
                key = dg.AssetKey(asset)
                assert instance.get_materialized_partitions(key) == set(SHARDS)
                assert partition_status(instance, asset) == dict.fromkeys(SHARDS, "MATERIALIZED")
                latest = instance.get_latest_materialization_event(key)
                assert latest is not None and latest.run_id == result.run_id
                for shard in SHARDS:
                    planned = instance.get_latest_planned_materialization_info(key, shard)
                    assert planned is not None and planned.run_id == result.run_id
            seen[kind] = events
    per_shard = [k for k in seen["stock"] if k[0] == "ASSET_MATERIALIZATION_PLANNED" and k[2]]
    assert len(per_shard) == len(PARTITIONED) * len(SHARDS)
    for kind, events in seen.items():
        assert events == seen["stock"], f"the {kind} storage recorded other events"


def test_a_failed_run_marks_its_shards_failed_as_dagsters_storage_does(
    engine, sandbox, roster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The UI shows a failed refresh's shards as failed: that comes from the planned events."""
    monkeypatch.setenv("JUHE_API_KEY", "wrong-key")  # the fetch stops: the key is rejected
    for kind in kinds():
        with instance_of(kind, tmp_path, monkeypatch) as instance:
            result = run_refresh(instance, first=SHARDS[0], last=SHARDS[-1])
            assert not result.success
            for asset in PARTITIONED:
                failed = dict.fromkeys(SHARDS, "FAILED")
                assert partition_status(instance, asset) == failed, (kind, asset)


def test_the_embedded_instance_keeps_its_event_log_under_dagster_home(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "home"
    home.mkdir()
    (home / "dagster.yaml").write_text((PROJECT_ROOT / "deploy" / "dagster.yaml").read_text())
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    monkeypatch.chdir(tmp_path)
    with dg.DagsterInstance.from_config(str(home)) as instance:
        assert isinstance(instance.event_log_storage, BatchingSqliteEventLogStorage)
    assert (home / "history" / "runs" / "index.db").exists()
    assert not (tmp_path / "history").exists()


def test_a_batch_whose_indexing_fails_is_indexed_one_by_one_not_stored_twice(
    engine, sandbox, roster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    index = event_storage._index

    def index_only_single_events(storage, conn, events, ids):  # type: ignore[no-untyped-def]
        if len(events) > 1:
            raise RuntimeError("database is locked")  # as a busy index database would
        index(storage, conn, events, ids)

    monkeypatch.setattr(event_storage, "_index", index_only_single_events)
    with instance_of("batching", tmp_path, monkeypatch) as instance:
        result = run_refresh(instance, first=SHARDS[0], last=SHARDS[-1], force=True)
        assert result.success
        events = asset_events(instance, result.run_id)
        assert max(events.values()) == 1, "an event was stored twice"
        for asset in PARTITIONED:
            assert partition_status(instance, asset) == dict.fromkeys(SHARDS, "MATERIALIZED")


def log_entry(run_id: str, message: str) -> dg.EventLogEntry:
    return dg.EventLogEntry(
        error_info=None,
        level=logging.INFO,
        user_message=message,
        run_id=run_id,
        timestamp=time.time(),
        step_key=None,
        job_name="refresh_job",
        dagster_event=None,
    )


def test_the_ui_sees_a_running_jobs_events_as_they_are_written(tmp_path: Path) -> None:
    """The run's process keeps its connection open, so its events land in the run file's WAL:
    the webserver's watch (the live event log) must wake on those writes too."""
    base = str(tmp_path / "runs")
    writer = BatchingSqliteEventLogStorage(base)  # the run's process
    webserver = BatchingSqliteEventLogStorage(base)
    run_id = make_new_run_id()
    seen: list[str] = []
    writer.store_event(log_entry(run_id, "started"))
    webserver.watch(run_id, None, lambda entry, _cursor: seen.append(entry.user_message))
    try:
        for message in ("event 0", "event 1", "event 2"):
            writer.store_event(log_entry(run_id, message))
            wait_until(lambda m=message: m in seen, within=30, what=f"the UI to see {message}")
        assert seen == ["started", "event 0", "event 1", "event 2"]
    finally:
        webserver.dispose()
        writer.dispose()


def test_a_failed_postgres_write_leaves_nothing_behind_and_dagster_stores_each_event_once(
    engine, sandbox, roster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On PostgreSQL a write (an event and its index rows) is one transaction: a batch whose
    indexing fails is rolled back whole, and Dagster's fallback then stores its events singly."""
    if not is_postgres():
        pytest.skip("the production storage is tested on PostgreSQL")
    index = event_storage._index

    def index_only_single_events(storage, conn, events, ids):  # type: ignore[no-untyped-def]
        if len(events) > 1:
            raise RuntimeError("deadlock detected")  # as a busy index table could
        index(storage, conn, events, ids)

    monkeypatch.setattr(event_storage, "_index", index_only_single_events)
    with instance_of("production", tmp_path, monkeypatch) as instance:
        result = run_refresh(instance, first=SHARDS[0], last=SHARDS[-1], force=True)
        assert result.success
        events = asset_events(instance, result.run_id)
        assert max(events.values()) == 1, "an event was stored twice"
        planned = [k for k in events if k[0] == "ASSET_MATERIALIZATION_PLANNED" and k[2]]
        assert len(planned) == len(PARTITIONED) * len(SHARDS)
        for asset in PARTITIONED:
            assert partition_status(instance, asset) == dict.fromkeys(SHARDS, "MATERIALIZED")


def test_on_postgres_only_event_writes_commit_without_waiting_for_the_wal_flush(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Event writes may lose their newest events if the server crashes (synchronous_commit=off);
    everything else the storage writes (concurrency slots, run-level reads) commits as usual."""
    if not is_postgres():
        pytest.skip("the production storage is tested on PostgreSQL")
    seen: dict[str, str] = {}
    store = PostgresEventLogStorage.store_event

    def store_noting_the_setting(storage, event):  # type: ignore[no-untyped-def]
        with storage._connect() as conn:
            seen["event write"] = conn.exec_driver_sql("SHOW synchronous_commit").scalar()
        store(storage, event)

    monkeypatch.setattr(PostgresEventLogStorage, "store_event", store_noting_the_setting)
    with instance_of("production", tmp_path, monkeypatch) as instance:
        run_id = make_new_run_id()
        instance.event_log_storage.store_event(log_entry(run_id, "hello"))
        with instance.event_log_storage._connect() as conn:
            seen["other"] = conn.exec_driver_sql("SHOW synchronous_commit").scalar()
        assert [entry.user_message for entry in instance.all_logs(run_id)] == ["hello"]
    assert seen == {"event write": "off", "other": "on"}


def sqlite_schema(path: Path) -> tuple:
    with contextlib.closing(sqlite3.connect(path)) as conn:
        return (
            conn.execute(
                "SELECT type, name, tbl_name, sql FROM sqlite_master ORDER BY name"
            ).fetchall(),
            conn.execute("SELECT version_num FROM alembic_version").fetchall(),
            conn.execute("PRAGMA journal_mode").fetchall(),
        )


def test_a_new_runs_event_log_file_is_the_one_dagster_would_make(tmp_path: Path) -> None:
    """Run files are copies of a template Dagster's own code made once: same tables, indexes,
    alembic revision and WAL mode as Dagster's storage gives a run, and every run its own."""
    ours = BatchingSqliteEventLogStorage(str(tmp_path / "ours"))
    stock = SqliteEventLogStorage(str(tmp_path / "stock"))
    runs = [make_new_run_id() for _ in range(3)]
    for run_id in runs:
        ours.store_event(log_entry(run_id, run_id))
    stock_run = make_new_run_id()
    stock.store_event(log_entry(stock_run, "stock"))
    expected = sqlite_schema(tmp_path / "stock" / f"{stock_run}.db")
    for run_id in runs:
        assert sqlite_schema(tmp_path / "ours" / f"{run_id}.db") == expected
        assert [e.user_message for e in ours.get_logs_for_run(run_id)] == [run_id]
    assert set(ours.get_all_run_ids()) == set(runs)
    ours.dispose()
    stock.dispose()
