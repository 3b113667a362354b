"""Dagster's overhead per company in a full refresh (issue 13 target: ≤ 0.5 ms per company).

A full refresh of N companies against a zero-latency sandbox, through the real refresh_job on a
temporary Dagster instance and SQLite data database, measured on the embedded instance (SQLite
event log) and on dagster-postgres instance storage (the production setup).

Overhead = run wall time − the time the roster, fetch and normalize stages report for their own
work (the `seconds`, `elapsed_s` and `normalize_seconds` metadata; each covers the stage's work
only: normalize's stops before the metadata queries, the fetch's is the fetch workers' time).
Everything else counts, and the breakdown says where it goes (it adds up to the overhead):

- dagster_run_start_s: from the call until the first step starts (the run and its planned
  events, the per-run event-log file, the plan, resources, log capture);
- dagster_steps_and_run_end_s: Dagster's work between and around the asset and check bodies
  (step events, materializations, outputs, input data versions, the run's end);
- asset_code_outside_stage_timers_s: the roster, fetch and normalize bodies' own work outside
  their stage timer (due-company queries, row counts, metadata, log lines);
- checks_s / report_s: the asset-check bodies and the report body (matplotlib charts).

The body times come from wrapping Dagster's compute of each step (`execute_core_compute`), and
the event-log writes are counted by wrapping the instance's storage; both only measure.

All refreshes of a storage run on one instance, as a deployment's nightly runs do; its first
run (32 companies) is reported apart, as it also makes the instance's one-time files. Each size
then runs twice and the run with the least overhead is reported (the other's figure beside it):
other work on the machine only ever adds time. A smaller refresh (N/4) separates the fixed
cost per run from the per-company part: most of the overhead is fixed (one run, 32 shards: ~390
planned and materialization events, seven steps, the report's charts), so its per-company
figure falls as N grows.
"""

from __future__ import annotations

import functools
import os
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, cast

import dagster as dg
from dagster._core.execution.plan import execute_step

from juhe_sandbox.server import SandboxConfig, SandboxServer

TARGET_MS_PER_COMPANY = 0.5
REPEATS = 2  # refreshes per size; the one with the least overhead is reported
FIRST_RUN_COMPANIES = 32  # a new instance's first run, reported apart
# Step → the metadata in which its stage reports its own work.
STAGES = {
    "company_roster": ("roster", "seconds"),
    "qualification_responses": ("fetch", "elapsed_s"),
    "normalized_tables": ("normalize", "normalize_seconds"),
}
REPORT_STEP = "qualification_report"


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


class _Meter:
    """Seconds spent in each step's body (its compute function), and in event-log writes."""

    def __init__(self) -> None:
        self.body_s: dict[str, float] = defaultdict(float)
        self.writes = {"s": 0.0, "calls": 0, "events": 0, "from_asset_code_s": 0.0}
        self._in_body = False
        self._writing = False  # a batch the storage stores one by one is counted once

    def compute(self, original: Callable[..., Iterator[Any]]) -> Callable[..., Iterator[Any]]:
        @functools.wraps(original)
        def timed(step_context: Any, *args: Any, **kwargs: Any) -> Iterator[Any]:
            key = step_context.step.key
            events = original(step_context, *args, **kwargs)
            while True:  # only the time inside the body counts, not Dagster's handling of yields
                started = time.perf_counter()
                self._in_body = True
                try:
                    event = next(events)
                except StopIteration:
                    return
                finally:
                    self._in_body = False
                    self.body_s[key] += time.perf_counter() - started
                yield event

        return timed

    def store(self, original: Callable[..., None], batch: bool) -> Callable[..., None]:
        @functools.wraps(original)
        def timed(events: Any) -> None:
            if self._writing:
                return original(events)
            started = time.perf_counter()
            self._writing = True
            try:
                original(events)
            finally:
                self._writing = False
                seconds = time.perf_counter() - started
                self.writes["s"] += seconds
                self.writes["calls"] += 1
                self.writes["events"] += len(events) if batch else 1
                if self._in_body:
                    self.writes["from_asset_code_s"] += seconds

        return timed

    @contextmanager
    def attached(self, instance: dg.DagsterInstance) -> Iterator[None]:
        storage = instance.event_log_storage
        original = execute_step.execute_core_compute
        execute_step.execute_core_compute = self.compute(original)  # type: ignore[assignment]
        storage.store_event = self.store(storage.store_event, batch=False)  # type: ignore[method-assign]
        storage.store_event_batch = self.store(storage.store_event_batch, batch=True)  # type: ignore[method-assign]
        try:
            yield
        finally:
            execute_step.execute_core_compute = original
            del storage.store_event, storage.store_event_batch


def _total(parts: dict[str, float]) -> dict[str, float]:
    return {"total": round(sum(parts.values()), 3), **{k: round(v, 3) for k, v in parts.items()}}


def _refresh(n: int, instance: dg.DagsterInstance) -> dict[str, Any]:
    from pipelines.db import upgrade
    from tests.dagster.helpers import run_refresh, write_roster

    meter = _Meter()
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
        with meter.attached(instance):
            called_at = time.time()
            started = time.perf_counter()
            result = run_refresh(instance)
            wall = time.perf_counter() - started
            first_step = min(
                entry.timestamp
                for entry in instance.all_logs(
                    result.run_id, of_type=dg.DagsterEventType.STEP_START
                )
            )
    assert result.success, "the benchmark refresh failed"

    stage_s = {
        stage: cast(float, result.asset_materializations_for_node(step)[0].metadata[key].value)
        for step, (stage, key) in STAGES.items()
    }
    overhead = wall - sum(stage_s.values())
    body = meter.body_s
    run_start = first_step - called_at
    outside_timers = {stage: body[step] - stage_s[stage] for step, (stage, _) in STAGES.items()}
    checks = sum(s for step, s in body.items() if step not in STAGES and step != REPORT_STEP)
    breakdown = {
        "dagster_run_start_s": round(run_start, 3),
        "dagster_steps_and_run_end_s": round(wall - run_start - sum(body.values()), 3),
        "asset_code_outside_stage_timers_s": _total(outside_timers),
        "checks_s": round(checks, 3),
        "report_s": round(body[REPORT_STEP], 3),
    }
    return {
        "companies": n,
        "run_wall_s": round(wall, 3),
        "stage_s": _total(stage_s),
        "overhead_s": round(overhead, 3),
        "overhead_ms_per_company": round(overhead * 1000 / n, 3),
        "overhead_breakdown_s": breakdown,
        "event_log_writes": {
            "events": meter.writes["events"],
            "calls": meter.writes["calls"],
            "s": round(meter.writes["s"], 3),
            # Its log lines; the fetch's progress lines are inside the fetch's stage time.
            "of which while asset code ran s": round(meter.writes["from_asset_code_s"], 3),
        },
    }


def _best(n: int, instance: dg.DagsterInstance) -> dict[str, Any]:
    """The refresh with the least overhead of REPEATS: other processes on the machine only ever
    add to a run's time (the others' overheads are listed beside it)."""
    runs = [_refresh(n, instance) for _ in range(REPEATS)]
    best = min(runs, key=lambda r: r["overhead_s"])
    return {**best, "overhead_s_of_each_run": [r["overhead_s"] for r in runs]}


def _storage(n: int, storage: str) -> dict[str, Any]:
    """Refreshes of n companies, and of n/4 to split the overhead into fixed and per company, on
    one instance as a deployment's runs are; its first run (few companies) is reported apart."""
    with _instance(storage) as instance:
        first = _refresh(FIRST_RUN_COMPANIES, instance)
        full, small = _best(n, instance), _best(max(n // 4, 1), instance)
    per_company = (full["overhead_s"] - small["overhead_s"]) / (n - small["companies"])
    fixed = full["overhead_s"] - per_company * n
    return {
        "instance_storage": storage,
        **full,
        "target_ms_per_company": TARGET_MS_PER_COMPANY,
        "meets_target": full["overhead_ms_per_company"] <= TARGET_MS_PER_COMPANY,
        "fixed_vs_per_company": {
            "smaller_run": {
                k: small[k] for k in ("companies", "run_wall_s", "overhead_s", "stage_s")
            },
            "fixed_s_per_run": round(fixed, 3),
            "per_company_ms": round(per_company * 1000, 3),
            "fixed_share_at_n": round(fixed / full["overhead_s"], 2),
        },
        # A new instance's first run also makes its one-time files (the run-file template).
        "first_run_of_a_new_instance": {
            k: first[k] for k in ("companies", "run_wall_s", "overhead_s", "overhead_breakdown_s")
        },
    }


def run(n: int = 2000) -> dict[str, Any]:
    from bench.__main__ import postgres_available

    results: dict[str, Any] = {"companies": n, "embedded": _storage(n, "sqlite")}
    if postgres_available():
        results["dagster_postgres"] = _storage(n, "postgres")
    return results


if __name__ == "__main__":
    print(run())
