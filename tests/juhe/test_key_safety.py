"""The juhe key never appears in logs (httpx/httpcore at DEBUG), errors, reports, the database or
any printed form of an object that holds it; it travels only encrypted, or unencrypted with a
warning at every run when the user opted in."""

from __future__ import annotations

import copy
import dataclasses
import json
import logging
import pickle
import pprint
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dagster as dg
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from pipelines import cli
from pipelines.definitions import defs
from pipelines.juhe.client import JuheClient
from pipelines.juhe.errors import JuheFatalError
from pipelines.juhe.fetcher import fetch_companies, raise_for_stop
from pipelines.juhe.ratelimit import SharedRateLimiter, limiter_path
from pipelines.settings import Secret, Settings
from tests.dagster.helpers import run_refresh
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


def renderings(value: object) -> Iterator[str]:
    """Every way code commonly turns an object into text."""
    yield repr(value)
    yield str(value)
    yield f"{value}"
    yield f"{value!r}"
    yield f"{value!s}"
    yield f"{value:}"
    yield format(value)
    yield "{}".format(value)  # noqa: UP032 - str.format is a rendering of its own
    yield "{0!r}".format(value)  # noqa: UP030, UP032
    yield "%s" % (value,)  # noqa: UP031 - %-formatting is what logging does
    yield "%r" % (value,)  # noqa: UP031
    yield str([value]) + str({"v": value}) + str((value,))
    yield pprint.pformat(value)
    record = logging.LogRecord("zizhi", logging.INFO, __file__, 0, "%s %r", (value, value), None)
    yield logging.Formatter().format(record)


def test_every_object_holding_the_key_prints_it_as_stars(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JUHE_API_KEY", RIGHT_KEY)
    monkeypatch.delenv("JUHE_BASE_URL", raising=False)
    secret = Secret(RIGHT_KEY)
    settings = Settings.from_env()
    defined = defs.resources["juhe"]
    with (
        JuheClient(settings.juhe_base_url, secret) as client,
        dg.build_resources({"juhe": defined}) as resources,
    ):
        running = resources.juhe  # what an asset receives: the EnvVar resolved
        assert running.api_key == RIGHT_KEY and secret.get_secret_value() == RIGHT_KEY
        holders: dict[str, Any] = {
            "Secret": secret,
            "Settings": settings,
            "a copy of the Settings": copy.deepcopy(settings),
            "JuheClient": client,
            "JuheResource as defined": defined,
            "JuheResource in a run": running,
        }
        texts = {
            f"{name}: {i}": text
            for name, v in holders.items()
            for i, text in enumerate(renderings(v))
        }
        texts["Settings as a dict"] = str(dataclasses.asdict(settings))
        texts["Settings as JSON"] = json.dumps(dataclasses.asdict(settings), default=str)
        for name in ("JuheResource as defined", "JuheResource in a run"):
            texts[f"{name}, pydantic dump"] = str(holders[name].model_dump())
            texts[f"{name}, pydantic JSON"] = holders[name].model_dump_json()
    for where, text in texts.items():
        assert RIGHT_KEY not in text, f"the key shows in {where}: {text}"
    assert "***" in str(secret) and "***" in repr(settings)
    with pytest.raises(TypeError):
        pickle.dumps(settings)


def test_plain_http_to_another_host_is_refused_before_any_run(
    database_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("JUHE_BASE_URL", "http://192.0.2.10/enterprise/App/ConLicByName/query")
    monkeypatch.setenv("JUHE_API_KEY", RIGHT_KEY)
    monkeypatch.delenv("JUHE_ALLOW_INSECURE_HTTP", raising=False)
    assert cli.main(["refresh"]) == 2
    said = capsys.readouterr().err
    assert "JUHE_BASE_URL" in said and "JUHE_ALLOW_INSECURE_HTTP=1" in said
    with dg.instance_for_test() as instance:
        result = run_refresh(instance, selection=["qualification_responses"])
    assert not result.success
    errors = [e.event_specific_data.error for e in result.all_events if e.is_failure]
    assert any("JUHE_BASE_URL" in (error.cause or error).message for error in errors if error)


def test_opted_in_plain_http_warns_in_the_fetch_step_and_the_cli(
    database_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """192.0.2.0/24 is reserved for documentation: with no company due, no request is made."""
    monkeypatch.setenv("JUHE_BASE_URL", "http://192.0.2.10/enterprise/App/ConLicByName/query")
    monkeypatch.setenv("JUHE_API_KEY", RIGHT_KEY)
    monkeypatch.setenv("JUHE_ALLOW_INSECURE_HTTP", "1")
    assert cli.main(["migrate"]) == 0
    assert "WARNING: JUHE_BASE_URL is plain http to 192.0.2.10" in capsys.readouterr().err
    with dg.instance_for_test() as instance:
        result = run_refresh(instance, selection=["qualification_responses"])
        assert result.success
        warnings = [
            entry
            for entry in instance.all_logs(result.run_id)
            if entry.level == logging.WARNING and "unencrypted" in entry.user_message
        ]
    assert [entry.step_key for entry in warnings] == ["qualification_responses"]
    assert "192.0.2.10" in warnings[0].user_message
    assert RIGHT_KEY not in warnings[0].user_message
