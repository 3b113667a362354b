"""Dagster instance behaviour: dagster-postgres storage, and the API key never reaching it."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import dagster as dg
import pytest
import sqlalchemy as sa

from tests.dagster.helpers import production_instance, run_refresh, write_roster, zizhi_instance
from tests.fixtures_db import create_pg_database, drop_pg_database, is_postgres

# Heavy: one xdist worker runs this group in sequence (see run_suites.sh).
pytestmark = pytest.mark.xdist_group("heavy")

SECRET = "zz-KEY-7f3a9c1e5b"


@pytest.fixture
def roster(sandbox_factory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    sandbox = sandbox_factory(api_key=SECRET)
    path = write_roster(tmp_path / "roster.csv", sandbox.dataset.companies[:15])
    monkeypatch.setenv("ROSTER_PATH", str(path))
    monkeypatch.setenv("JUHE_BASE_URL", sandbox.url)
    monkeypatch.setenv("JUHE_API_KEY", SECRET)
    monkeypatch.setenv("JUHE_QPS", "100")
    return sandbox


@pytest.mark.skipif(
    not is_postgres(), reason="dagster-postgres storage is tested in the PostgreSQL suite"
)
def test_refresh_completes_on_the_production_instance_storage(
    engine, roster, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The storage of deploy/dagster.production.yaml: dagster-postgres, batching event log."""
    storage_url = create_pg_database("zizhi_dagster")
    monkeypatch.setenv("DAGSTER_PG_URL", storage_url)
    try:
        with production_instance() as instance:
            result = run_refresh(instance)
            assert result.success
            assert type(instance.run_storage).__name__ == "PostgresRunStorage"
            assert instance.get_run_by_id(result.run_id).is_success
            materialized = instance.get_latest_materialization_event(dg.AssetKey("licenses"))
            assert materialized is not None
    finally:
        drop_pg_database(storage_url)


def test_the_api_key_shows_nowhere(
    engine, roster, caplog: pytest.LogCaptureFixture, capfd, tmp_path: Path
) -> None:
    caplog.set_level(logging.DEBUG)
    with zizhi_instance(tmp_path / "dagster") as instance:
        result = run_refresh(instance)
        assert result.success
        run = instance.get_run_by_id(result.run_id)
        event_log = [record.to_json() for record in instance.all_logs(result.run_id)]
    assert roster.stats()["requests"] == 15
    places = {
        "run config": json.dumps(run.run_config, default=str),
        "run tags": json.dumps(run.tags),
        "Dagster event log": "\n".join(event_log),
        "Python log records": "\n".join(r.getMessage() for r in caplog.records),
        "stdout/stderr": "".join(capfd.readouterr()),
    }
    for place, text in places.items():
        assert SECRET not in text, f"the API key appears in the {place}"
    with engine.connect() as conn:
        for table in sa.inspect(conn).get_table_names():
            columns = [c["name"] for c in sa.inspect(conn).get_columns(table)]
            for column in columns:
                found = conn.execute(
                    sa.text(
                        f'SELECT COUNT(*) FROM "{table}" WHERE CAST("{column}" AS TEXT) LIKE :k'
                    ),
                    {"k": f"%{SECRET}%"},
                ).scalar_one()
                assert found == 0, f"the API key appears in {table}.{column}"
