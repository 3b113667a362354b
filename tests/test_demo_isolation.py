"""`make demo` and `make dev` never touch production, whatever the environment says.

A user who exported production settings (database, roster, endpoint, key, DAGSTER_HOME) and then
runs the demo gets the demo: its own folder, the bundled sandbox and its sample roster. Here the
"production" is the test database and a second sandbox; nothing may land in either.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from juhe_sandbox.server import SandboxServer
from pipelines import cli, devserver
from tests.dagster.helpers import counts, write_roster
from tests.fixtures_sandbox import SandboxFactory

pytestmark = pytest.mark.xdist_group("heavy")

TABLES = ("companies", "raw_responses", "api_calls", "licenses", "roster_rejects")
PRODUCTION_KEY = "zk-PROD-1e5b9a7c33d04f62"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def production(
    database_url: str,
    sandbox_factory: SandboxFactory,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> SandboxServer:
    """Production settings exported in the environment: the test database, a roster, another
    sandbox as the paid endpoint, a Dagster home and a data folder."""
    paid = sandbox_factory(api_key=PRODUCTION_KEY)
    roster = write_roster(tmp_path / "production_roster.csv", paid.dataset.companies[:5])
    for name, value in {
        "DATABASE_URL": database_url,
        "ROSTER_PATH": str(roster),
        "JUHE_BASE_URL": paid.url,
        "JUHE_API_KEY": PRODUCTION_KEY,
        "JUHE_DAILY_BUDGET": "1",
        "DAGSTER_HOME": str(tmp_path / "production_dagster_home"),
        "ZIZHI_DATA_DIR": str(tmp_path / "production_data"),
    }.items():
        monkeypatch.setenv(name, value)
    return paid


def assert_production_untouched(
    production: SandboxServer, engine: sa.Engine, tmp_path: Path
) -> None:
    assert production.stats()["requests"] == 0
    assert set(counts(engine, *TABLES).values()) == {0}
    assert not (tmp_path / "production_dagster_home").exists()
    assert not (tmp_path / "production_data").exists()
    assert os.environ["JUHE_BASE_URL"] == production.url  # the environment is given back
    assert os.environ["JUHE_API_KEY"] == PRODUCTION_KEY


def test_the_demo_uses_its_own_database_roster_and_sandbox(
    production: SandboxServer,
    engine: sa.Engine,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    home = tmp_path / "demo"
    assert cli.demo(free_port(), home) == 0
    out = capsys.readouterr().out
    assert_production_untouched(production, engine, tmp_path)
    said = next(line for line in out.splitlines() if line.startswith("demo: "))
    assert str(home) in said and "sandbox" in said
    for name in ("DATABASE_URL", "ROSTER_PATH", "JUHE_BASE_URL", "JUHE_API_KEY"):
        assert name in said
    demo_engine = sa.create_engine(f"sqlite:///{home / 'zizhi.sqlite'}")
    try:
        landed = counts(demo_engine, "companies", "raw_responses")
    finally:
        demo_engine.dispose()
    assert landed["companies"] > 100 and landed["raw_responses"] == landed["companies"]
    assert (home / "dagster_home" / "dagster.yaml").exists()


def test_the_dev_server_uses_its_own_database_roster_and_sandbox(
    production: SandboxServer,
    engine: sa.Engine,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The UI and daemon are started with the environment `dev` sets up; here a stand-in records
    that environment instead of starting them."""
    seen: dict[str, str] = {}

    @contextlib.contextmanager
    def services(**_: object) -> Iterator[str]:
        seen.update(os.environ)
        raise KeyboardInterrupt  # as if the user pressed Ctrl-C at once
        yield "http://127.0.0.1:3000"

    monkeypatch.setattr(devserver, "dagster_services", services)
    home = tmp_path / "demo"
    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(KeyboardInterrupt):
        cli.dev(free_port(), home)
    assert signal.getsignal(signal.SIGTERM) == before
    assert seen["DATABASE_URL"] == f"sqlite:///{home / 'zizhi.sqlite'}"
    assert seen["DAGSTER_HOME"] == str(home / "dagster_home")
    assert seen["ROSTER_PATH"] == str(cli.SAMPLE_ROSTER)
    assert seen["JUHE_BASE_URL"].startswith("http://127.0.0.1:")
    assert seen["JUHE_API_KEY"] != PRODUCTION_KEY
    assert "JUHE_DAILY_BUDGET" not in seen
    assert "dev: " in capsys.readouterr().out
    assert_production_untouched(production, engine, tmp_path)
