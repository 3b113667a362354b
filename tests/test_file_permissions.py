"""zizhi's files are created readable by their owner only: 0700 folders, 0600 files.

The SQLite database (and its WAL), the rate limiter's file beside it and DAGSTER_HOME hold paid
data and every run's traces. Each test starts from the common umask 022, so it fails if zizhi
relies on a stricter umask than a user's shell gives it.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from pipelines.db import get_engine, upgrade
from pipelines.instance import prepare_instance
from pipelines.juhe.ratelimit import SharedRateLimiter, limiter_path


@pytest.fixture(autouse=True)
def usual_umask() -> Iterator[None]:
    saved = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(saved)


def modes(root: Path) -> dict[str, str]:
    """Every folder and file under `root` (and root itself) with its permission bits."""
    paths = [root, *root.rglob("*")]
    return {str(p.relative_to(root.parent)): oct(stat.S_IMODE(p.stat().st_mode)) for p in paths}


def not_private(root: Path) -> dict[str, str]:
    """What under `root` someone other than its owner could read, write or enter."""
    return {name: mode for name, mode in modes(root).items() if int(mode, 8) & 0o077}


def test_the_sqlite_database_and_the_limiter_file_are_private(tmp_path: Path) -> None:
    data = tmp_path / "fresh" / "data"
    url = f"sqlite:///{data / 'zizhi.sqlite'}"
    upgrade(url)
    engine = get_engine(url)
    with SharedRateLimiter.for_database(url, 5) as limiter:
        limiter.acquire()
    with engine.connect() as conn:  # the WAL and shared-memory files exist while connected
        conn.exec_driver_sql("SELECT 1")
        created = modes(tmp_path / "fresh")
        leaks = not_private(tmp_path / "fresh")
    engine.dispose()
    assert Path(limiter_path(str(data / "zizhi.sqlite"))).exists()
    assert "fresh/data/zizhi.sqlite" in created and "fresh/data/zizhi.sqlite-wal" in created
    assert created["fresh/data"] == "0o700"
    assert created["fresh/data/zizhi.sqlite"] == "0o600"
    assert leaks == {}


def test_dagster_home_is_private(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    home = tmp_path / "fresh" / "dagster_home"
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    with prepare_instance() as instance:
        instance.get_runs()  # the instance's storage exists
    assert (home / "dagster.yaml").exists() and len(modes(home)) > 2
    assert modes(home)["dagster_home"] == "0o700"
    assert not_private(tmp_path / "fresh") == {}
