"""The juhe key never appears in logs (httpx/httpcore at DEBUG), errors, reports or the database."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from pipelines.juhe.client import JuheClient
from pipelines.juhe.errors import JuheFatalError
from pipelines.juhe.fetcher import fetch_companies, raise_for_stop
from pipelines.juhe.ratelimit import SharedRateLimiter, limiter_path
from pipelines.settings import Secret
from tests.fixtures_db import is_postgres
from tests.fixtures_sandbox import SandboxFactory
from tests.juhe.helpers import sandbox_companies

RIGHT_KEY = "zk-RIGHT-5f0c2b9e71d34a6b"
WRONG_KEY = "zk-WRONG-a81d0e44c2f9b713"


def fetch_with(database_url: str, engine: Engine, url: str, key: str, companies) -> str:  # type: ignore[no-untyped-def]
    """Run a fetch; everything it says about itself (report, raised error) as text."""
    with (
        SharedRateLimiter.for_database(database_url, 50) as limiter,
        JuheClient(url, Secret(key), read_timeout=0.5) as client,
    ):
        report = fetch_companies(
            engine,
            companies,
            client,
            limiter,
            run_id="key-safety",
            concurrency=4,
            sleep=lambda s: None,
            max_attempts=6,
        )
    try:
        raise_for_stop(report)
    except JuheFatalError as error:
        return f"{report!r} {error} {error!r}"
    return repr(report)


def test_the_key_appears_nowhere(
    database_url: str,
    engine: Engine,
    sandbox_factory: SandboxFactory,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    faults = {"http502": 0.1, "truncated": 0.1, "drop": 0.05, "260200": 0.05, "slow": 0.02}
    sandbox = sandbox_factory(api_key=RIGHT_KEY, faults=faults, slow_seconds=1.0)
    companies = sandbox_companies(engine, sandbox, 30)

    said = fetch_with(database_url, engine, sandbox.url, RIGHT_KEY, companies[:20])
    said += fetch_with(database_url, engine, sandbox.url, WRONG_KEY, companies[20:])

    assert "10001" in said and "JUHE_API_KEY" in said  # the wrong key was really refused
    assert any(r.name.startswith("httpcore") for r in caplog.records)  # DEBUG was captured
    for key in (RIGHT_KEY, WRONG_KEY):
        assert key not in said
        assert key not in caplog.text
        assert not [r for r in caplog.records if key in r.getMessage() or key in repr(r.args)]
        assert key not in database_text(engine)
        for path in files_of(database_url):
            assert key.encode() not in path.read_bytes(), path


def database_text(engine: Engine) -> str:
    """Every row of every table (ours, Alembic's and the limiter's), as text."""
    metadata = sa.MetaData()
    metadata.reflect(engine)
    with engine.connect() as conn:
        return "\n".join(
            repr(tuple(row))
            for table in metadata.sorted_tables
            for row in conn.execute(sa.select(table))
        )


def files_of(database_url: str) -> list[Path]:
    """The SQLite database, its WAL and the limiter file, byte for byte (none on PostgreSQL)."""
    if is_postgres():
        return []
    database = sa.make_url(database_url).database or ""
    names = [database, f"{database}-wal", limiter_path(database), f"{limiter_path(database)}-wal"]
    return [Path(name) for name in names if Path(name).exists()]
