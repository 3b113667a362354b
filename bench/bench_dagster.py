"""Dagster's own overhead per company in a full refresh (issue: ≤ 2 ms per company).

A full refresh of N companies against a zero-latency sandbox, through the real refresh_job on a
real (temporary) Dagster instance and SQLite database. Overhead = run wall time − the time the
fetch and normalize stages report for their own work.
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

import dagster as dg

from juhe_sandbox.server import SandboxConfig, SandboxServer


def run(n: int = 2000) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp, SandboxServer(SandboxConfig(size=n)) as sandbox:
        from pipelines.db import upgrade
        from tests.dagster.helpers import run_refresh, write_roster

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
        with dg.instance_for_test() as instance:
            started = time.perf_counter()
            result = run_refresh(instance)
            wall = time.perf_counter() - started
        assert result.success, "the benchmark refresh failed"
        fetch = result.asset_materializations_for_node("qualification_responses")[0].metadata
        normalized = result.asset_materializations_for_node("normalized_tables")
        fetch_s = float(fetch["elapsed_s"].value)
        normalize_s = float(normalized[0].metadata["normalize_seconds"].value)
        roster = result.asset_materializations_for_node("company_roster")[0].metadata
        roster_s = float(roster["seconds"].value) if "seconds" in roster else 0.0
        overhead = wall - fetch_s - normalize_s - roster_s
        return {
            "companies": n,
            "run_wall_s": round(wall, 2),
            "fetch_s": round(fetch_s, 2),
            "normalize_s": round(normalize_s, 2),
            "roster_s": round(roster_s, 2),
            "dagster_overhead_s": round(overhead, 2),
            "overhead_ms_per_company": round(overhead * 1000 / n, 3),
        }


if __name__ == "__main__":
    print(run())
