"""Separate processes fetching at once share one rate limit; a killed fetch loses nothing landed.

Each child process builds its own limiter and client and its own database connections, as two
Dagster runs would. Children are forked: spawning one re-imports `pipelines` (and with it Dagster),
which costs seconds per child.

The limit is judged as juhe would: the sandbox stamps arrivals with the kernel's receive time plus
a simulated one-way network delay (lognormal, median 20 ms, p99 120 ms), while two busy-loop
processes load the CPU, and the fetching processes freeze between slot and send (a
stop-the-world pause), which the limiter's send-time stamps must absorb.
"""

from __future__ import annotations

import datetime as dt
import multiprocessing
import time
from collections.abc import Sequence

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from models import FetchClaim
from models.tables import RawResponse
from pipelines.db import get_engine
from pipelines.juhe.client import JuheClient, JuheResponse
from pipelines.juhe.due import DueCompany, select_due
from pipelines.juhe.fetcher import fetch_companies
from pipelines.juhe.ratelimit import SharedRateLimiter
from pipelines.settings import Secret
from tests.fixtures_sandbox import SandboxFactory
from tests.juhe.helpers import cpu_hog, raw_responses, sandbox_companies

# Judges real time: run_suites.sh runs these serially, after the parallel phase.
pytestmark = [pytest.mark.xdist_group("heavy"), pytest.mark.timing_sensitive]

FORK = multiprocessing.get_context("fork")
JITTER = {"net_delay_ms": 20.0, "net_delay_p99_ms": 120.0}
FREEZE_EVERY_S = 3.0


class FreezingClient(JuheClient):
    """A client whose process freezes for `freeze_s` every FREEZE_EVERY_S between slot and
    send (a stop-the-world pause: a garbage collection, a starved VM, a lost SYN): requests
    granted a slot during the freeze leave together when it ends."""

    def __init__(self, *args, freeze_s: float, **kwargs) -> None:  # type: ignore[no-untyped-def]
        super().__init__(*args, **kwargs)
        self._origin, self._freeze_s = time.monotonic(), freeze_s

    def query(self, name, on_sent=None, before_send=None) -> JuheResponse:  # type: ignore[no-untyped-def]
        phase = (time.monotonic() - self._origin) % FREEZE_EVERY_S
        if phase < self._freeze_s:
            time.sleep(self._freeze_s - phase)
        return super().query(name, on_sent=on_sent, before_send=before_send)


def fetch_stage(
    database_url: str,
    url: str,
    key: str,
    companies: Sequence[DueCompany],
    qps: float,
    run_id: str,
    freeze_s: float = 0.0,
) -> int:
    """A whole fetch stage with its own limiter and client; how many companies remain."""
    limiter = SharedRateLimiter.for_database(database_url, qps)
    client = (
        FreezingClient(url, Secret(key), freeze_s=freeze_s)
        if freeze_s
        else JuheClient(url, Secret(key))
    )
    with limiter, client:
        report = fetch_companies(
            get_engine(database_url), companies, client, limiter, run_id=run_id, concurrency=6
        )
    return report.remaining


def child_main(*args) -> None:  # type: ignore[no-untyped-def]
    get_engine(args[0]).dispose(close=False)  # never share the parent's pooled connections
    raise SystemExit(fetch_stage(*args))


def start_child(database_url: str, sandbox, companies, qps: float, run_id: str, freeze_s=0.0):  # type: ignore[no-untyped-def]
    process = FORK.Process(
        target=child_main,
        args=(
            database_url,
            sandbox.url,
            sandbox.config.api_key,
            list(companies),
            qps,
            run_id,
            freeze_s,
        ),
    )
    process.start()
    return process


def join_or_fail(children, bound: float = 300) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + bound
    for child in children:
        child.join(timeout=max(0.0, deadline - time.monotonic()))
    if any(child.is_alive() for child in children):
        for child in children:
            child.kill()
        pytest.fail(f"the fetch processes did not finish within {bound:.0f} s: machine too slow")


@pytest.mark.slow
@pytest.mark.parametrize(
    "freeze_s",
    [0.5, 1.5],  # shorter than the window (re-stamped at send) and longer (slot exchanged)
)
def test_two_processes_at_the_sandbox_limit_never_exceed_it_under_jitter_and_load(
    database_url: str, engine: Engine, sandbox_factory: SandboxFactory, freeze_s: float
) -> None:
    sandbox = sandbox_factory(latency_ms=60, qps_limit=20, **JITTER)
    companies = sandbox_companies(engine, sandbox, 160)
    with cpu_hog():
        children = [
            start_child(database_url, sandbox, part, 20, f"run-{i}", freeze_s=freeze_s)
            for i, part in enumerate((companies[::2], companies[1::2]))
        ]
        join_or_fail(children)
    assert [child.exitcode for child in children] == [0, 0]
    stats = sandbox.stats()
    assert stats["violations"] == 0, stats["violations"]
    assert stats["max_in_window"] <= 20
    assert stats["requests"] == 160 and set(stats["per_query"].values()) == {1}
    assert len(raw_responses(engine)) == 160


@pytest.mark.slow
def test_kill_minus_9_mid_fetch_then_rerun_fetches_only_what_had_not_landed(
    database_url: str, engine: Engine, sandbox_factory: SandboxFactory
) -> None:
    sandbox = sandbox_factory(latency_ms=150, qps_limit=30)
    companies = sandbox_companies(engine, sandbox, 60)
    child = start_child(database_url, sandbox, companies, 30, "killed-run")
    deadline = time.monotonic() + 300
    while len(raw_responses(engine)) < 15 and time.monotonic() < deadline and child.is_alive():
        time.sleep(0.05)
    child.kill()  # SIGKILL: no cleanup, calls in flight are lost
    child.join()
    landed = {r.company_id for r in raw_responses(engine)}
    assert 15 <= len(landed) < 60
    with engine.begin() as conn:  # the dead run's claims hold its companies until the lease ends
        assert landed <= set(conn.execute(sa.select(FetchClaim.company_id)).scalars())
        conn.execute(sa.update(FetchClaim).values(expires_at=dt.datetime.now(dt.UTC)))

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
