"""Overlapping runs buy each company once and share one daily budget (both backends)."""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Sequence

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from models import ApiBudgetDay, FetchClaim
from pipelines.juhe.claims import claim, reserve_call
from pipelines.juhe.client import JuheClient
from pipelines.juhe.due import DueCompany
from pipelines.juhe.errors import ErrorClass
from pipelines.juhe.fetcher import FetchReport, fetch_companies
from pipelines.juhe.ledger import CallRecord, log_call
from pipelines.juhe.ratelimit import SharedRateLimiter
from pipelines.settings import Secret
from tests.fixtures_sandbox import SandboxFactory
from tests.juhe.helpers import add_companies, sandbox_companies

NOW = dt.datetime(2026, 11, 29, 4, 0, tzinfo=dt.UTC)


def overlapping_runs(
    database_url: str,
    engine: Engine,
    sandbox,  # type: ignore[no-untyped-def]
    companies: Sequence[DueCompany],
    **options,  # type: ignore[no-untyped-def]
) -> list[FetchReport]:
    """Two fetch runs, each with its own limiter and client, started together."""
    reports: list[FetchReport] = []
    gate = threading.Barrier(2)

    def one(run_id: str) -> None:
        limiter = SharedRateLimiter.for_database(database_url, 200)
        with limiter, JuheClient(sandbox.url, Secret(sandbox.config.api_key)) as client:
            gate.wait()
            reports.append(
                fetch_companies(
                    engine, companies, client, limiter, run_id=run_id, concurrency=4, **options
                )
            )

    threads = [threading.Thread(target=one, args=(f"run-{i}",)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(reports) == 2
    return reports


def test_two_runs_over_the_same_companies_buy_each_answer_once(
    database_url: str, engine: Engine, sandbox_factory: SandboxFactory
) -> None:
    sandbox = sandbox_factory(latency_ms=10)
    companies = sandbox_companies(engine, sandbox, 40)
    reports = overlapping_runs(database_url, engine, sandbox, companies)
    stats = sandbox.stats()
    assert stats["requests"] == 40 and set(stats["per_query"].values()) == {1}
    assert sum(r.landed_ok + r.not_found for r in reports) == 40
    assert sum(r.claimed_elsewhere for r in reports) == 40
    assert [r.remaining for r in reports] == [0, 0]
    with engine.connect() as conn:  # each run released its claims
        assert conn.execute(sa.select(sa.func.count()).select_from(FetchClaim)).scalar() == 0


def test_two_runs_never_spend_past_the_shared_daily_budget(
    database_url: str, engine: Engine, sandbox_factory: SandboxFactory
) -> None:
    sandbox = sandbox_factory(latency_ms=10)
    companies = sandbox_companies(engine, sandbox, 40)
    reports = overlapping_runs(database_url, engine, sandbox, companies, daily_budget=15)
    assert sandbox.stats()["requests"] == 15
    assert sum(r.calls for r in reports) == 15
    assert {r.stopped_by for r in reports} == {"budget"}


def test_a_claim_held_by_a_live_run_is_skipped_and_one_of_a_dead_run_taken_over(
    engine: Engine,
) -> None:
    [company] = add_companies(engine, ["中建八局第三建设有限公司"])
    assert claim(engine, company.id, "nightly", since=NOW, now=NOW)
    later = NOW + dt.timedelta(minutes=5)
    assert not claim(engine, company.id, "backfill", since=later, now=later)
    assert claim(engine, company.id, "nightly", since=NOW, now=later)  # its own
    expired = NOW + dt.timedelta(hours=1)  # the nightly died; its lease ran out
    assert claim(engine, company.id, "backfill", since=expired, now=expired)


def test_a_company_attempted_since_the_run_started_is_not_bought_again(engine: Engine) -> None:
    [company] = add_companies(engine, ["中建八局第三建设有限公司"], last_attempt_at=NOW)
    started_before = NOW - dt.timedelta(minutes=1)
    assert not claim(engine, company.id, "backfill", since=started_before, now=NOW)
    started_after = NOW + dt.timedelta(minutes=1)
    assert claim(engine, company.id, "nightly", since=started_after, now=started_after)


def test_the_day_counter_starts_from_the_ledger_and_stops_at_the_budget(engine: Engine) -> None:
    [company] = add_companies(engine, ["中建八局第三建设有限公司"])
    for attempt in (1, 2):
        log_call(engine, CallRecord(company.id, NOW, attempt, ErrorClass.TRANSIENT, "earlier"))
    assert [reserve_call(engine, 4, NOW) for _ in range(3)] == [True, True, False]
    next_day = NOW + dt.timedelta(days=1)
    assert reserve_call(engine, 4, next_day)
    with engine.connect() as conn:
        days = dict(conn.execute(sa.select(ApiBudgetDay.day, ApiBudgetDay.calls)).all())
    assert days == {dt.date(2026, 11, 29): 4, dt.date(2026, 11, 30): 1}
