"""Separate processes fetching at once share one rate limit; a killed fetch loses nothing landed.

Each child process builds its own limiter and client and its own database connections, as two
Dagster runs would. Children are forked: spawning one re-imports `pipelines` (and with it Dagster),
which costs seconds per child.
"""

from __future__ import annotations

import datetime as dt
import multiprocessing
import time
from collections.abc import Sequence

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from models.tables import RawResponse
from pipelines.db import get_engine
from pipelines.juhe.client import JuheClient
from pipelines.juhe.due import DueCompany, select_due
from pipelines.juhe.fetcher import fetch_companies
from pipelines.juhe.ratelimit import SharedRateLimiter
from pipelines.settings import Secret
from tests.fixtures_sandbox import SandboxFactory
from tests.juhe.helpers import raw_responses, sandbox_companies

# Heavy or timing-sensitive: one xdist worker runs this group in sequence (see run_suites.sh).
pytestmark = pytest.mark.xdist_group("heavy")

FORK = multiprocessing.get_context("fork")


def fetch_stage(
    database_url: str,
    url: str,
    key: str,
    companies: Sequence[DueCompany],
    qps: float,
    run_id: str,
) -> int:
    """A whole fetch stage with its own limiter and client; how many companies remain."""
    limiter = SharedRateLimiter.for_database(database_url, qps)
    with limiter, JuheClient(url, Secret(key)) as client:
        report = fetch_companies(
            get_engine(database_url), companies, client, limiter, run_id=run_id, concurrency=6
        )
    return report.remaining


def child_main(*args) -> None:  # type: ignore[no-untyped-def]
    get_engine(args[0]).dispose(close=False)  # never share the parent's pooled connections
    raise SystemExit(fetch_stage(*args))


def start_child(database_url: str, sandbox, companies, qps: float, run_id: str):  # type: ignore[no-untyped-def]
    process = FORK.Process(
        target=child_main,
        args=(database_url, sandbox.url, sandbox.config.api_key, list(companies), qps, run_id),
    )
    process.start()
    return process


@pytest.mark.slow
def test_two_processes_at_the_sandbox_limit_never_exceed_it(
    database_url: str, engine: Engine, sandbox_factory: SandboxFactory
) -> None:
    sandbox = sandbox_factory(latency_ms=60, qps_limit=10)
    companies = sandbox_companies(engine, sandbox, 60)
    children = [
        start_child(database_url, sandbox, part, 10, f"run-{i}")
        for i, part in enumerate((companies[::2], companies[1::2]))
    ]
    for child in children:
        child.join(timeout=120)
    assert [child.exitcode for child in children] == [0, 0]
    stats = sandbox.stats()
    assert stats["violations"] == 0
    assert stats["max_in_window"] <= 10
    assert stats["requests"] == 60 and set(stats["per_query"].values()) == {1}
    assert len(raw_responses(engine)) == 60


@pytest.mark.slow
def test_kill_minus_9_mid_fetch_then_rerun_fetches_only_what_had_not_landed(
    database_url: str, engine: Engine, sandbox_factory: SandboxFactory
) -> None:
    sandbox = sandbox_factory(latency_ms=150, qps_limit=30)
    companies = sandbox_companies(engine, sandbox, 60)
    child = start_child(database_url, sandbox, companies, 30, "killed-run")
    deadline = time.monotonic() + 60
    while len(raw_responses(engine)) < 15 and time.monotonic() < deadline and child.is_alive():
        time.sleep(0.05)
    child.kill()  # SIGKILL: no cleanup, calls in flight are lost
    child.join()
    landed = {r.company_id for r in raw_responses(engine)}
    assert 15 <= len(landed) < 60

    sandbox.reset_stats()
    due = select_due(
        engine, shards=None, now=dt.datetime.now(dt.UTC), refresh_interval=dt.timedelta(days=7)
    )
    assert {c.id for c in due} == {c.id for c in companies} - landed
    assert fetch_stage(database_url, sandbox.url, sandbox.config.api_key, due, 30, "rerun") == 0

    assert set(sandbox.stats()["per_query"]) == {c.query for c in due}  # nothing landed again
    with engine.connect() as conn:
        rows, calls, companies_landed = conn.execute(
            sa.select(
                sa.func.count(),
                sa.func.count(sa.distinct(RawResponse.api_call_id)),
                sa.func.count(sa.distinct(RawResponse.company_id)),
            )
        ).one()
    assert rows == calls == companies_landed == 60
