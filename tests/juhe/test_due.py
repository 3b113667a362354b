"""The due policy over crafted company rows, on the backend under test."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy.engine import Engine

from pipelines.juhe.due import count_due, failure_backoff, select_due
from tests.juhe.helpers import NOW, add_companies

WEEK = dt.timedelta(days=7)
HOUR = dt.timedelta(hours=1)


def due_names(engine: Engine, **kwargs) -> list[str]:  # type: ignore[no-untyped-def]
    options = {"shards": None, "now": NOW, "refresh_interval": WEEK, **kwargs}
    return [c.name for c in select_due(engine, **options)]


def test_never_fetched_companies_are_due(engine: Engine) -> None:
    add_companies(engine, ["新公司甲", "新公司乙"])
    assert due_names(engine) == ["新公司甲", "新公司乙"]


def test_success_is_due_again_only_after_the_refresh_interval(engine: Engine) -> None:
    add_companies(engine, ["昨天"], fetch_status="ok", last_fetched_at=NOW - dt.timedelta(days=1))
    add_companies(engine, ["八天前"], fetch_status="ok", last_fetched_at=NOW - dt.timedelta(days=8))
    add_companies(
        engine, ["查无八天前"], fetch_status="not_found", last_fetched_at=NOW - dt.timedelta(days=8)
    )
    add_companies(
        engine, ["查无昨天"], fetch_status="not_found", last_fetched_at=NOW - dt.timedelta(days=1)
    )
    assert due_names(engine) == ["八天前", "查无八天前"]


@pytest.mark.parametrize(
    ("failures", "ago", "due"),
    [
        (1, dt.timedelta(minutes=59), False),
        (1, dt.timedelta(minutes=61), True),
        (2, dt.timedelta(minutes=90), False),
        (2, dt.timedelta(hours=2, minutes=1), True),
        (4, dt.timedelta(hours=7), False),
        (4, dt.timedelta(hours=8, minutes=1), True),
        (20, dt.timedelta(days=6), False),  # capped at the refresh interval, not 2^19 h
        (20, dt.timedelta(days=7, minutes=1), True),
    ],
)
def test_failed_company_waits_for_exponential_backoff(
    engine: Engine, failures: int, ago: dt.timedelta, due: bool
) -> None:
    add_companies(
        engine,
        ["失败公司"],
        fetch_status="failed",
        consecutive_failures=failures,
        last_attempt_at=NOW - ago,
        last_fetched_at=NOW - dt.timedelta(days=1),
    )
    assert due_names(engine) == (["失败公司"] if due else [])


def test_backoff_is_one_hour_doubling_capped_at_the_interval() -> None:
    assert [failure_backoff(n, WEEK) for n in (1, 2, 3)] == [HOUR, 2 * HOUR, 4 * HOUR]
    assert failure_backoff(30, WEEK) == WEEK
    assert failure_backoff(1, dt.timedelta(minutes=10)) == dt.timedelta(minutes=10)


def test_invalid_query_is_not_retried_until_the_refresh_interval(engine: Engine) -> None:
    add_companies(
        engine, ["无效昨天"], fetch_status="invalid", last_attempt_at=NOW - dt.timedelta(days=1)
    )
    add_companies(
        engine, ["无效八天前"], fetch_status="invalid", last_attempt_at=NOW - dt.timedelta(days=8)
    )
    assert due_names(engine) == ["无效八天前"]
    assert due_names(engine, force=True) == ["无效昨天", "无效八天前"]


def test_inactive_companies_are_never_due_even_forced(engine: Engine) -> None:
    add_companies(engine, ["停用"], active=False)
    add_companies(engine, ["在用"], fetch_status="ok", last_fetched_at=NOW)
    assert due_names(engine) == []
    assert due_names(engine, force=True) == ["在用"]


def test_shards_limit_and_count(engine: Engine) -> None:
    companies = add_companies(engine, [f"公司{i:03d}" for i in range(40)])
    shards = sorted({c.shard for c in companies})[:3]
    in_shards = [c.name for c in companies if c.shard in shards]
    assert due_names(engine, shards=shards) == in_shards
    assert due_names(engine, shards=shards, limit=2) == in_shards[:2]
    assert count_due(engine, shards=shards, now=NOW, refresh_interval=WEEK) == len(in_shards)
    assert count_due(engine, shards=None, now=NOW, refresh_interval=WEEK) == 40
    assert due_names(engine, shards=[]) == []


def test_result_is_ordered_by_id_and_carries_the_query(engine: Engine) -> None:
    added = add_companies(engine, ["乙公司", "甲公司"])
    due = select_due(engine, shards=None, now=NOW, refresh_interval=WEEK)
    assert due == added
    assert [c.id for c in due] == sorted(c.id for c in due)
