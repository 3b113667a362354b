"""Step retries: an infrastructure failure mid-run converges on the next attempt; a fatal key
error is never retried."""

from __future__ import annotations

import itertools

import pytest
import sqlalchemy as sa

from tests.dagster.helpers import counts, run_refresh, write_roster, zizhi_instance
from tests.fixtures_db import PG_ADMIN_URL, is_postgres

pytestmark = pytest.mark.xdist_group("heavy")


def restart_database_at(sandbox, database: str, request: int, monkeypatch) -> None:
    """Kill every connection to the database, as a PostgreSQL restart does, when the sandbox
    receives its `request`-th call: before answering it, so the fetch is surely mid-way."""
    answer = sandbox.answer
    calls = itertools.count(1)

    def answer_after_restart(params, arrived=None):  # type: ignore[no-untyped-def]
        if next(calls) == request:
            admin = sa.create_engine(sa.make_url(PG_ADMIN_URL).set(drivername="postgresql+psycopg"))
            with admin.begin() as conn:
                conn.execute(
                    sa.text(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                        "WHERE datname = :db AND pid <> pg_backend_pid()"
                    ),
                    {"db": database},
                )
            admin.dispose()
        return answer(params, arrived)

    monkeypatch.setattr(sandbox, "answer", answer_after_restart)


@pytest.mark.skipif(not is_postgres(), reason="a server restart is a PostgreSQL event")
def test_database_restart_mid_fetch_converges_on_the_next_attempt(
    engine, database_url, sandbox_factory, tmp_path, monkeypatch
) -> None:
    sandbox = sandbox_factory(latency_ms=20)
    roster = write_roster(tmp_path / "roster.csv", sandbox.dataset.companies[:40])
    monkeypatch.setenv("ROSTER_PATH", str(roster))
    monkeypatch.setenv("JUHE_BASE_URL", sandbox.url)
    monkeypatch.setenv("JUHE_API_KEY", sandbox.config.api_key)
    monkeypatch.setenv("JUHE_QPS", "50")
    restart_database_at(sandbox, sa.make_url(database_url).database, 16, monkeypatch)
    with zizhi_instance(tmp_path / "dagster") as instance:
        result = run_refresh(instance)
    assert result.success
    retried = [e for e in result.all_events if e.event_type_value == "STEP_UP_FOR_RETRY"]
    assert [e.step_key for e in retried] == ["qualification_responses"]
    landed = counts(engine, "companies", "raw_responses")
    with engine.connect() as conn:
        fetched = conn.execute(
            sa.text("SELECT COUNT(DISTINCT company_id) FROM raw_responses")
        ).scalar_one()
    assert landed["companies"] == fetched == 40
    # Nothing landed twice: the retry fetched only what the first attempt had not landed.
    assert landed["raw_responses"] == 40


def test_a_fatal_key_error_is_not_retried(engine, sandbox, tmp_path, monkeypatch) -> None:
    roster = write_roster(tmp_path / "roster.csv", sandbox.dataset.companies[:10])
    monkeypatch.setenv("ROSTER_PATH", str(roster))
    monkeypatch.setenv("JUHE_API_KEY", "wrong-key")
    with zizhi_instance(tmp_path / "dagster") as instance:
        result = run_refresh(instance)
    assert not result.success
    assert not [e for e in result.all_events if e.event_type_value == "STEP_UP_FOR_RETRY"]
