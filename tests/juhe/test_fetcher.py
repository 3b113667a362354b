"""fetch_companies' retry, stop and ledger logic with a scripted transport and a real database.

The HTTP behaviour against a real server is in test_sandbox_*.py; here httpx.MockTransport scripts
exact answer sequences, sleep and clock are injected, and no test waits for a backoff.
"""

from __future__ import annotations

import datetime as dt
import itertools
import threading
from collections import Counter
from collections.abc import Callable

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from models.tables import ApiCall
from pipelines.juhe.client import JuheClient
from pipelines.juhe.errors import JuheFatalError
from pipelines.juhe.fetcher import FetchProgress, fetch_companies, raise_for_stop
from pipelines.settings import Secret
from tests.juhe.helpers import add_companies, api_calls, companies_by_name, raw_responses

OK_BODY = {
    "error_code": 0,
    "reason": "success",
    "sign": "0" * 32,
    "result": {"total": 1, "items": [{"lic_no": "D1", "category": "建筑"}]},
}


class FakeSlot:
    def before_send(self) -> None:
        pass

    def sent(self) -> None:
        pass


class FakeLimiter:
    qps = 10.0

    def __init__(self) -> None:
        self.acquired = 0
        self.penalties: list[float] = []

    def acquire(self) -> FakeSlot:
        self.acquired += 1
        return FakeSlot()

    def penalize(self, seconds: float) -> None:
        self.penalties.append(seconds)


def scripted(script: Callable[[str, int], httpx.Response]) -> JuheClient:
    """A client whose answer for a name depends on how often that name was asked."""
    seen: Counter[str] = Counter()
    lock = threading.Lock()

    def handler(request: httpx.Request) -> httpx.Response:
        name = httpx.QueryParams(request.content.decode())["name"]
        with lock:
            seen[name] += 1
            count = seen[name]
        return script(name, count)

    return JuheClient(
        "http://juhe.test/query", Secret("unit-key"), transport=httpx.MockTransport(handler)
    )


def answer(code: int | str, **extra: object) -> httpx.Response:
    body = OK_BODY if code == 0 else {"error_code": code, "reason": "r", "result": None}
    return httpx.Response(200, json={**body, **extra})


def run(engine: Engine, companies, client, **kwargs):  # type: ignore[no-untyped-def]
    sleeps: list[float] = []
    options = {"run_id": "run-1", "concurrency": 1, "sleep": sleeps.append, **kwargs}
    limiter = options.pop("limiter", FakeLimiter())
    report = fetch_companies(engine, companies, client, limiter, **options)
    return report, sleeps


def test_transient_failures_are_retried_with_jittered_backoff_then_land(engine: Engine) -> None:
    companies = add_companies(engine, ["重试公司"])

    def script(name: str, count: int) -> httpx.Response:
        return [httpx.Response(502, text="<html>502</html>"), answer(260200), answer(0)][count - 1]

    report, sleeps = run(engine, companies, scripted(script), backoff_base=0.5, backoff_cap=8.0)
    assert (report.landed_ok, report.failed, report.calls, report.billable_calls) == (1, 0, 3, 1)
    calls = api_calls(engine)
    assert [(c.attempt, c.outcome, c.http_status, c.error_code, c.billable) for c in calls] == [
        (1, "transient", 502, None, False),
        (2, "transient", 200, 260200, False),
        (3, "ok", 200, 0, True),
    ]
    assert 0 <= sum(sleeps) <= 0.5 + 1.0  # full jitter: ≤ base, then ≤ 2 × base
    [raw] = raw_responses(engine)
    assert raw.api_call_id == calls[-1].id and raw.error_code == 0 and raw.run_id == "run-1"
    company = companies_by_name(engine)["重试公司"]
    assert (company.fetch_status, company.consecutive_failures) == ("ok", 0)
    assert company.last_fetched_at is not None


def test_exhausted_transient_attempts_mark_the_company_failed(engine: Engine) -> None:
    add_companies(engine, ["坏公司"], consecutive_failures=2, fetch_status="failed")
    companies = add_companies(engine, ["总超时"])
    report, _ = run(engine, companies, scripted(lambda n, c: answer(10014)), max_attempts=3)
    assert (report.failed, report.calls, report.remaining) == (1, 3, 1)
    assert report.failures_by_code == {"10014": ["总超时"]}
    company = companies_by_name(engine)["总超时"]
    assert (company.fetch_status, company.consecutive_failures, company.last_error_code) == (
        "failed",
        1,
        10014,
    )
    assert raw_responses(engine) == []


def test_invalid_query_is_never_retried(engine: Engine) -> None:
    companies = add_companies(engine, ["坏名字"])
    report, sleeps = run(engine, companies, scripted(lambda n, c: answer("260202")))
    assert (report.invalid, report.calls, sleeps) == (1, 1, [])
    assert companies_by_name(engine)["坏名字"].fetch_status == "invalid"
    assert report.failures_by_code == {"260202": ["坏名字"]}


def test_not_found_lands_its_body(engine: Engine) -> None:
    companies = add_companies(engine, ["查无此公司"])
    report, _ = run(engine, companies, scripted(lambda n, c: answer(260204)))
    assert (report.not_found, report.billable_calls, report.remaining) == (1, 0, 0)
    [raw] = raw_responses(engine)
    assert raw.error_code == 260204
    assert companies_by_name(engine)["查无此公司"].fetch_status == "not_found"


def test_throttled_answer_pauses_the_limiter_and_retries(engine: Engine) -> None:
    companies = add_companies(engine, ["限流公司"])
    limiter = FakeLimiter()
    script = lambda n, c: answer(10011) if c <= 2 else answer(0)  # noqa: E731
    report, sleeps = run(engine, companies, scripted(script), limiter=limiter, max_attempts=1)
    assert (report.landed_ok, report.calls) == (1, 3)
    assert len(limiter.penalties) == 2 and sleeps == []
    assert report.calls_by_outcome == {"throttled": 2, "ok": 1}


def test_company_that_stays_throttled_stays_due_without_failure(engine: Engine) -> None:
    companies = add_companies(engine, ["一直限流"])
    report, _ = run(
        engine, companies, scripted(lambda n, c: answer(10011)), max_throttled_attempts=5
    )
    assert (report.calls, report.failed, report.remaining) == (5, 0, 1)
    company = companies_by_name(engine)["一直限流"]
    assert (company.fetch_status, company.consecutive_failures) == ("pending", 0)


def test_quota_stops_all_calling_and_leaves_the_rest_due(engine: Engine) -> None:
    companies = add_companies(engine, [f"配额{i}" for i in range(10)])
    served = Counter[str]()

    def script(name: str, count: int) -> httpx.Response:
        served["n"] += 1
        return answer(0) if served["n"] <= 4 else answer(10012)

    report, _ = run(engine, companies, scripted(script))
    assert report.stopped_by == "quota" and report.stop_code == 10012
    assert (report.calls, report.landed_ok, report.remaining, report.failed) == (5, 4, 6, 0)
    assert "10012" in (report.stop_message or "")
    states = Counter(c.fetch_status for c in companies_by_name(engine).values())
    assert states == {"ok": 4, "pending": 6}
    raise_for_stop(report)  # quota is not an error


@pytest.mark.parametrize(
    ("code", "kind"), [(10001, "fatal"), (10021, "fatal"), (10020, "maintenance")]
)
def test_fatal_and_maintenance_stop_at_the_first_answer(
    engine: Engine, code: int, kind: str
) -> None:
    companies = add_companies(engine, [f"公司{i}" for i in range(5)])
    report, _ = run(engine, companies, scripted(lambda n, c: answer(code)))
    assert (report.stopped_by, report.stop_code, report.calls) == (kind, code, 1)
    assert report.remaining == 5 and report.failed == 0
    assert all(c.fetch_status == "pending" for c in companies_by_name(engine).values())
    if kind == "fatal":
        assert "JUHE_API_KEY" in (report.stop_message or "")
        with pytest.raises(JuheFatalError, match="JUHE_API_KEY"):
            raise_for_stop(report)


def test_daily_budget_counts_todays_calls_from_every_run(engine: Engine) -> None:
    now = dt.datetime.now(dt.UTC)
    with engine.begin() as conn:
        conn.execute(
            sa.insert(ApiCall),
            [{"called_at": now, "attempt": 1, "outcome": "ok", "run_id": "earlier"}] * 3
            + [
                {
                    "called_at": now - dt.timedelta(days=2),
                    "attempt": 1,
                    "outcome": "ok",
                    "run_id": "old",
                }
            ]
            * 5,
        )
    companies = add_companies(engine, [f"预算{i}" for i in range(6)])
    report, _ = run(
        engine, companies, scripted(lambda n, c: answer(0)), daily_budget=5, price_per_call=0.1
    )
    assert (report.stopped_by, report.calls, report.landed_ok, report.remaining) == (
        "budget",
        2,
        2,
        4,
    )
    assert report.estimated_cost == pytest.approx(0.2)
    assert "JUHE_DAILY_BUDGET" in (report.stop_message or "")


def test_external_stop_event_cancels_cleanly(engine: Engine) -> None:
    companies = add_companies(engine, [f"取消{i}" for i in range(5)])
    stop = threading.Event()

    def script(name: str, count: int) -> httpx.Response:
        stop.set()
        return answer(0)

    report, _ = run(engine, companies, scripted(script), stop_event=stop)
    assert (report.stopped_by, report.calls, report.landed_ok, report.remaining) == (
        "cancelled",
        1,
        1,
        4,
    )


def test_progress_is_reported_at_most_every_two_seconds_and_at_the_end(engine: Engine) -> None:
    companies = add_companies(engine, [f"进度{i}" for i in range(10)])
    ticks = iter(range(0, 1000))
    seen: list[FetchProgress] = []
    report, _ = run(
        engine,
        companies,
        scripted(lambda n, c: answer(0)),
        clock=lambda: float(next(ticks)),
        progress=seen.append,
    )
    assert report.landed_ok == 10
    assert seen[-1].done == 10 and seen[-1].total == 10
    assert all(b.elapsed - a.elapsed >= 2 for a, b in itertools.pairwise(seen))
    assert 2 <= len(seen) <= 7
    assert "10/10" in seen[-1].describe()


def test_many_workers_land_every_company_once(engine: Engine) -> None:
    companies = add_companies(engine, [f"并发{i}" for i in range(60)])
    script = lambda n, c: httpx.Response(502) if c == 1 and n.endswith("7") else answer(0)  # noqa: E731
    report, _ = run(engine, companies, scripted(script), concurrency=8)
    assert (report.landed_ok, report.calls, report.remaining) == (60, 66, 0)
    raws = raw_responses(engine)
    assert len({r.company_id for r in raws}) == len(raws) == 60
