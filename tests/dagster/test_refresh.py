"""A full refresh through Dagster: roster → sandbox over HTTP → raw → normalized tables → report."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa

from tests.dagster.helpers import counts, run_refresh, write_roster, zizhi_instance

# Runs use the instance of deploy/dagster.yaml (batching event log), as `make refresh` does: on
# Dagster's stock SQLite event log, one commit per event, a refresh took 3x as long.
# Heavy: one xdist worker runs this group in sequence (see run_suites.sh).
pytestmark = pytest.mark.xdist_group("heavy")


@pytest.fixture
def roster(sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = write_roster(tmp_path / "roster.csv", sandbox.dataset.companies[:40])
    monkeypatch.setenv("ROSTER_PATH", str(path))
    monkeypatch.setenv("JUHE_QPS", "200")
    return path


def test_full_refresh_lands_every_company_and_fills_the_tables(
    engine, sandbox, roster, tmp_path: Path
) -> None:
    with zizhi_instance(tmp_path / "dagster") as instance:
        result = run_refresh(instance)
    assert result.success
    landed = counts(
        engine, "companies", "raw_responses", "licenses", "license_names", "license_changes"
    )
    assert landed["companies"] == 40
    assert landed["raw_responses"] == 40
    assert landed["licenses"] > 40 and landed["license_names"] > landed["licenses"]
    assert landed["license_changes"] == landed["licenses"]  # the first load: every licence added
    with engine.connect() as conn:
        statuses = dict(
            conn.execute(
                sa.text("SELECT fetch_status, COUNT(*) FROM companies GROUP BY fetch_status")
            ).all()
        )
    known = sum(1 for c in sandbox.dataset.companies[:40] if c.known)
    assert statuses == {k: v for k, v in {"ok": known, "not_found": 40 - known}.items() if v}
    fetch_md = result.asset_materializations_for_node("qualification_responses")[0].metadata
    assert fetch_md["calls"].value == 40 and fetch_md["billable_calls"].value == known
    assert sandbox.stats()["requests"] == 40


def test_second_refresh_spends_no_call_on_fresh_companies(
    engine, sandbox, roster, tmp_path: Path
) -> None:
    with zizhi_instance(tmp_path / "dagster") as instance:
        assert run_refresh(instance).success
        before = sandbox.stats()["requests"]
        assert run_refresh(instance).success
        assert sandbox.stats()["requests"] == before
        assert run_refresh(instance, force=True).success
        assert sandbox.stats()["requests"] == before + 40
    assert counts(engine, "raw_responses")["raw_responses"] == 80


def test_wrong_key_fails_the_run_naming_the_variable(
    engine, sandbox, roster, monkeypatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("JUHE_API_KEY", "not-the-key")
    with zizhi_instance(tmp_path / "dagster") as instance:
        result = run_refresh(instance)
    assert not result.success
    failure = next(e for e in result.all_events if e.is_step_failure)
    message = failure.step_failure_data.user_failure_data.description
    assert "JUHE_API_KEY" in message
    assert "not-the-key" not in message


def test_refresh_refuses_a_database_behind_the_head_migration(
    sandbox, roster, empty_database_url, monkeypatch, tmp_path: Path
) -> None:
    from pipelines.db import upgrade

    upgrade(empty_database_url, "0001")
    monkeypatch.setenv("DATABASE_URL", empty_database_url)
    with zizhi_instance(tmp_path / "dagster") as instance:
        result = run_refresh(instance)
    assert not result.success
    failures = [
        e.step_failure_data.user_failure_data for e in result.all_events if e.is_step_failure
    ]
    assert any(f is not None and "make migrate" in (f.description or "") for f in failures)


def test_a_failing_fetch_blocks_normalize_but_still_reports_every_check(
    engine, sandbox_factory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every call answers 10014 until retries run out: the blocking failure-rate check fails, so
    the normalized tables and the report are not built on a fetch that mostly failed."""
    failing = sandbox_factory(faults={"10014": 1.0})
    path = write_roster(tmp_path / "roster.csv", failing.dataset.companies[:8])
    for name, value in {
        "ROSTER_PATH": str(path),
        "JUHE_BASE_URL": failing.url,
        "JUHE_API_KEY": failing.config.api_key,
        "JUHE_QPS": "200",
    }.items():
        monkeypatch.setenv(name, value)
    with zizhi_instance(tmp_path / "dagster") as instance:
        result = run_refresh(instance)
        evaluations = {
            e.asset_check_evaluation_data.check_name: e.asset_check_evaluation_data.passed
            for e in result.all_events
            if e.event_type_value == "ASSET_CHECK_EVALUATION"
        }
    assert not result.success
    assert evaluations["fetch_failure_rate"] is False
    assert evaluations["fetch_not_stopped"] is True
    materialized = {e.asset_key.to_user_string() for e in result.get_asset_materialization_events()}
    assert "qualification_responses" in materialized
    assert not materialized & {"licenses", "license_changes", "qualification_report"}
    assert counts(engine, "licenses")["licenses"] == 0


def test_make_refresh_reports_a_failed_blocking_check_and_exits_non_zero(
    engine, sandbox_factory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    """`make refresh`'s command: a run failed by a blocking check (a RUN_FAILURE after the
    check's step failure) is reported by step and returns False, never a traceback."""
    from pipelines import cli

    failing = sandbox_factory(faults={"10014": 1.0})
    path = write_roster(tmp_path / "roster.csv", failing.dataset.companies[:4])
    for name, value in {
        "ROSTER_PATH": str(path),
        "JUHE_BASE_URL": failing.url,
        "JUHE_API_KEY": failing.config.api_key,
        "JUHE_QPS": "200",
        "DAGSTER_HOME": str(tmp_path / "dagster"),
    }.items():
        monkeypatch.setenv(name, value)
    (tmp_path / "dagster").mkdir()
    assert cli.refresh(quiet=True) is False
    assert "refresh failed in fetch_checks" in capsys.readouterr().err
