"""fetch_companies over real HTTP against the juhe sandbox: each error class behaves as the contract
says (docs/architecture.md#error-codes-and-actions). Backoff sleeps are injected, so nothing
waits."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Sequence
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from juhe_sandbox import hostile
from juhe_sandbox.server import SandboxServer
from models.tables import ApiCall, RawResponse
from pipelines.juhe.client import JuheClient
from pipelines.juhe.due import DueCompany, select_due
from pipelines.juhe.errors import JuheFatalError
from pipelines.juhe.fetcher import FetchReport, fetch_companies, raise_for_stop
from pipelines.juhe.ratelimit import SharedRateLimiter
from pipelines.normalize import normalize_pending, renormalize
from pipelines.settings import Secret
from tests.fixtures_sandbox import SandboxFactory
from tests.juhe.helpers import (
    add_companies,
    api_calls,
    companies_by_name,
    raw_responses,
    sandbox_companies,
)
from tests.normalize import digest

# Heavy or timing-sensitive: one xdist worker runs this group in sequence (see run_suites.sh).
pytestmark = pytest.mark.xdist_group("heavy")

CONCURRENCY = 4


def fetch(
    database_url: str,
    engine: Engine,
    sandbox: SandboxServer,
    companies: Sequence[DueCompany],
    *,
    key: str | None = None,
    qps: float = 50,
    read_timeout: float = 15.0,
    **options: Any,
) -> FetchReport:
    limiter = SharedRateLimiter.for_database(database_url, qps)
    client = JuheClient(
        sandbox.url, Secret(key or sandbox.config.api_key), read_timeout=read_timeout
    )
    options = {"run_id": "run-1", "concurrency": CONCURRENCY, "sleep": lambda s: None, **options}
    with client:
        try:
            return fetch_companies(engine, companies, client, limiter, **options)
        finally:
            limiter.close()


def due(engine: Engine) -> list[DueCompany]:
    return select_due(
        engine, shards=None, now=dt.datetime.now(dt.UTC), refresh_interval=dt.timedelta(days=7)
    )


def test_every_company_lands_once_with_its_raw_body(
    database_url: str, engine: Engine, sandbox_factory: SandboxFactory
) -> None:
    sandbox = sandbox_factory(latency_ms=5)
    companies = sandbox_companies(engine, sandbox, 40)
    report = fetch(database_url, engine, sandbox, companies)
    unknown = sum(not c.known for c in sandbox.dataset.companies[:40])
    assert (report.landed_ok, report.not_found, report.remaining) == (40 - unknown, unknown, 0)
    assert report.calls == report.billable_calls + unknown == sandbox.stats()["requests"]
    raws = raw_responses(engine)
    assert sorted(r.query for r in raws) == sorted(c.query for c in companies)
    assert all(r.body and len(r.body_sha256) == 64 and r.api_call_id for r in raws)
    assert due(engine) == []


def test_faults_on_a_sixth_of_calls_still_land_every_company_within_bounded_attempts(
    database_url: str, engine: Engine, sandbox_factory: SandboxFactory
) -> None:
    faults = {
        "260200": 0.03,
        "10014": 0.03,
        "http502": 0.03,
        "truncated": 0.03,
        "drop": 0.02,
        "slow": 0.02,
    }
    sandbox = sandbox_factory(latency_ms=5, faults=faults, slow_seconds=1.0)
    companies = sandbox_companies(engine, sandbox, 80)
    report = fetch(database_url, engine, sandbox, companies, max_attempts=6, read_timeout=0.4)
    stats = sandbox.stats()
    # A truncated HTTP 200 body is unusable: kept, its company failed for this run, not bought
    # again in it. Every other fault is retried until the company lands.
    truncated = stats["faults"].get("truncated", 0)
    assert report.failed == truncated
    assert report.landed_ok + report.not_found + truncated == 80
    assert sum(stats["faults"].values()) >= 5  # the faults really happened
    calls = api_calls(engine)
    assert len(calls) == report.calls == stats["requests"]
    per_company = Counter(c.company_id for c in calls)
    assert max(per_company.values()) <= 6
    assert {c.outcome for c in calls} <= {"ok", "not_found", "transient"}
    raws = raw_responses(engine)
    assert len(raws) == 80 and len({r.company_id for r in raws}) == 80  # every body kept


def test_wrong_key_stops_at_once_with_a_message_naming_juhe_api_key(
    database_url: str, engine: Engine, sandbox_factory: SandboxFactory
) -> None:
    sandbox = sandbox_factory(latency_ms=20)
    companies = sandbox_companies(engine, sandbox, 30)
    report = fetch(database_url, engine, sandbox, companies, key="not-the-sandbox-key")
    assert (report.stopped_by, report.stop_code) == ("fatal", 10001)
    assert report.calls <= CONCURRENCY  # only the requests already in flight
    assert sandbox.stats()["requests"] == report.calls
    assert "JUHE_API_KEY" in (report.stop_message or "")
    with pytest.raises(JuheFatalError, match="JUHE_API_KEY"):
        raise_for_stop(report)
    assert report.remaining == 30 and len(due(engine)) == 30  # nothing failed on its own account


def test_quota_stop_then_the_next_run_fetches_only_the_rest(
    database_url: str, engine: Engine, sandbox_factory: SandboxFactory
) -> None:
    sandbox = sandbox_factory(latency_ms=20, daily_quota=12)
    companies = sandbox_companies(engine, sandbox, 40)
    first = fetch(database_url, engine, sandbox, companies)
    over_quota = sandbox.stats()["by_error_code"].get(10012, 0)
    assert (first.stopped_by, first.stop_code) == ("quota", 10012)
    assert first.landed_ok + first.not_found == 12
    assert 1 <= over_quota <= CONCURRENCY  # nothing started after the first 10012 came back
    landed = {r.query for r in raw_responses(engine)}
    remaining = due(engine)
    assert len(remaining) == first.remaining == 28
    assert not landed & {c.query for c in remaining}

    sandbox.configure(daily_quota=None)  # the quota is topped up
    sandbox.reset_stats()
    second = fetch(database_url, engine, sandbox, remaining, run_id="run-2")
    assert second.stopped_by is None and second.remaining == 0
    assert set(sandbox.stats()["per_query"]) == {c.query for c in remaining}
    assert len(raw_responses(engine)) == 40 and due(engine) == []


def test_maintenance_stops_and_a_later_run_resumes(
    database_url: str, engine: Engine, sandbox_factory: SandboxFactory
) -> None:
    sandbox = sandbox_factory(latency_ms=20, maintenance=True)
    companies = sandbox_companies(engine, sandbox, 20)
    first = fetch(database_url, engine, sandbox, companies)
    assert first.stopped_by == "maintenance" and first.calls <= CONCURRENCY
    assert {c.fetch_status for c in companies_by_name(engine).values()} == {"pending"}
    sandbox.configure(maintenance=False)
    second = fetch(database_url, engine, sandbox, due(engine), run_id="run-2")
    assert second.remaining == 0 and len(raw_responses(engine)) == 20


def test_too_high_qps_is_throttled_slowed_down_and_still_completes(
    database_url: str, engine: Engine, sandbox_factory: SandboxFactory
) -> None:
    sandbox = sandbox_factory(latency_ms=5, qps_limit=4)
    companies = sandbox_companies(engine, sandbox, 16)
    report = fetch(database_url, engine, sandbox, companies, qps=40)
    assert report.calls_by_outcome.get("throttled", 0) > 0
    assert (report.landed_ok + report.not_found, report.failed, report.remaining) == (16, 0, 0)
    with engine.connect() as conn:
        throttled_billable = conn.execute(
            sa.select(sa.func.count()).where(ApiCall.outcome == "throttled", ApiCall.billable)
        ).scalar_one()
        raws = conn.execute(sa.select(sa.func.count()).select_from(RawResponse)).scalar_one()
    assert throttled_billable == 0 and raws == 16


def test_invalid_queries_are_marked_and_not_retried(
    database_url: str, engine: Engine, sandbox_factory: SandboxFactory
) -> None:
    sandbox = sandbox_factory()
    companies = add_companies(engine, ["   ", "长" * 201])
    report = fetch(database_url, engine, sandbox, companies)
    assert (report.invalid, report.calls) == (2, 2)
    assert set(report.failures_by_code) == {"260202"}
    assert {c.fetch_status for c in companies_by_name(engine).values()} == {"invalid"}
    assert due(engine) == []


def test_a_day_of_hostile_answers_then_a_clean_day_leaves_the_tables_of_the_clean_days(
    database_url: str, engine: Engine, sandbox_factory: SandboxFactory
) -> None:
    """Day 1 clean, day 2 every answer hostile (each kind of juhe_sandbox/hostile.py), day 3
    clean, all from the same sandbox day: the run never fails, every hostile answer keeps its
    ledger row and raw body, and the final tables equal those of the clean days alone."""
    sandbox = sandbox_factory(latency_ms=1)
    companies = sandbox_companies(engine, sandbox, 45)
    clean = fetch(database_url, engine, sandbox, companies, run_id="clean-1")
    normalize_pending(engine, shards=None, run_id="n1")

    share = 0.99 / len(hostile.KINDS)
    sandbox.configure(faults=dict.fromkeys(hostile.KINDS, share))
    poisoned = fetch(database_url, engine, sandbox, companies, run_id="hostile")
    stats = sandbox.stats()
    assert set(stats["faults"]) == set(hostile.KINDS)  # every kind really happened
    refused = sum(stats["faults"][k] for k in ("deep", "oversize", "result_string", "items_object"))
    assert poisoned.failed == refused and poisoned.calls == len(companies)  # none re-bought
    assert poisoned.failures_by_code.keys() <= {"unusable"}
    report = normalize_pending(engine, shards=None, run_id="n2")
    assert report.hostile["refused at fetch"] == refused
    assert report.implausible_times > 0 and report.empty_success > 0
    with engine.connect() as conn:
        of_the_day = RawResponse.run_id == "hostile"
        hostile_raws = conn.execute(
            sa.select(sa.func.count()).select_from(RawResponse).where(of_the_day)
        ).scalar()
        assert "\x00" not in "".join(conn.execute(sa.select(RawResponse.body)).scalars())
    assert (
        hostile_raws
        == len(companies)
        == len([c for c in api_calls(engine) if c.run_id == "hostile"])
    )

    sandbox.configure(faults={})
    fetch(database_url, engine, sandbox, companies, run_id="clean-2")
    normalize_pending(engine, shards=None, run_id="n3")
    assert clean.failed == 0
    final = digest(engine)

    with engine.begin() as conn:  # the clean days alone, rebuilt from their raw bodies
        conn.execute(sa.delete(RawResponse).where(RawResponse.run_id == "hostile"))
    renormalize(engine, shards=None, run_id="reference", rebuild=True)
    reference = digest(engine)
    assert final == reference
