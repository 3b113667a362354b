"""Dagster's own overhead per company in a full refresh (issue target: ≤ 2 ms per company).

A full refresh of N companies against a zero-latency sandbox, through the real refresh_job on a
temporary Dagster instance and SQLite data database. Overhead = run wall time − the time the
roster, fetch and normalize stages report for their own work. Measured twice: on the embedded
instance (SQLite event log) and on dagster-postgres instance storage (the production setup).

Most of the overhead is a fixed cost per run, not per company: Dagster records a planned and a
materialization event per asset per shard (6 partitioned assets × 32 shards ≈ 390 events), which
zizhi's event-log storage (pipelines/event_storage.py) writes in a few batches.
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import dagster as dg

from juhe_sandbox.server import SandboxConfig, SandboxServer


@contextmanager
def _instance(storage: str) -> Iterator[dg.DagsterInstance]:
    """The instance storage of deploy/dagster.yaml or deploy/dagster.production.yaml."""
    from tests.dagster.helpers import production_instance, zizhi_instance

    if storage == "sqlite":
        with tempfile.TemporaryDirectory() as tmp, zizhi_instance(Path(tmp)) as instance:
            yield instance
        return
    from tests.fixtures_db import create_pg_database, drop_pg_database

    url = create_pg_database("zizhi_bench_dagster")
    os.environ["DAGSTER_PG_URL"] = url
    try:
        with production_instance() as instance:
            yield instance
    finally:
        drop_pg_database(url)


def _refresh(n: int, storage: str) -> dict[str, Any]:
    from pipelines.db import upgrade
    from tests.dagster.helpers import run_refresh, write_roster

    with tempfile.TemporaryDirectory() as tmp, SandboxServer(SandboxConfig(size=n)) as sandbox:
        url = f"sqlite:///{Path(tmp) / 'bench.sqlite'}"
        upgrade(url)
        os.environ.update(
            DATABASE_URL=url,
            ZIZHI_DATA_DIR=str(Path(tmp) / "data"),
            JUHE_BASE_URL=sandbox.url,
            JUHE_API_KEY=sandbox.config.api_key,
            JUHE_QPS="2000",
            ROSTER_PATH=str(write_roster(Path(tmp) / "roster.csv", sandbox.dataset.companies)),
        )
        with _instance(storage) as instance:
            started = time.perf_counter()
            result = run_refresh(instance)
            wall = time.perf_counter() - started
    assert result.success, "the benchmark refresh failed"

    def seconds(node: str, key: str) -> float:
        return float(result.asset_materializations_for_node(node)[0].metadata[key].value)

    own = {
        "roster_s": seconds("company_roster", "seconds"),
        "fetch_s": seconds("qualification_responses", "elapsed_s"),
        "normalize_s": seconds("normalized_tables", "normalize_seconds"),
    }
    overhead = wall - sum(own.values())
    return {
        "instance_storage": storage,
        "run_wall_s": round(wall, 2),
        **{k: round(v, 2) for k, v in own.items()},
        "dagster_overhead_s": round(overhead, 2),
        "overhead_ms_per_company": round(overhead * 1000 / n, 2),
    }


def run(n: int = 2000) -> dict[str, Any]:
    from bench.__main__ import postgres_available

    results = {"companies": n, "embedded": _refresh(n, "sqlite")}
    if postgres_available():
        results["dagster_postgres"] = _refresh(n, "postgres")
    return results


if __name__ == "__main__":
    print(run())
