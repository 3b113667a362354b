"""Idempotence, rebuild from raw, kill -9 mid-run and two overlapping runs (both backends)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from juhe_sandbox.dataset import Dataset
from models import Company, License, LicenseChange, RawResponse
from pipelines.normalize import normalize_pending, renormalize
from pipelines.shards import shard_of
from tests.normalize import add_raws, day, digest, raw_row

ROOT = Path(__file__).resolve().parents[2]
RUN = (
    "import sys\n"
    "from pipelines.db import get_engine\n"
    "from pipelines.normalize import normalize_pending\n"
    "normalize_pending(get_engine(sys.argv[1]), shards=None, run_id=sys.argv[2],"
    " chunk_size=int(sys.argv[3]))\n"
)


def land_days(engine: Engine, size: int, days: int) -> int:
    """Companies of a sandbox world and `days` days of their raw responses; returns the count."""
    dataset = Dataset(seed=5, size=size)
    with engine.begin() as conn:
        ids = {
            c.name: conn.execute(
                sa.insert(Company)
                .values(name=c.name, match_key=c.name, query=c.name, shard=shard_of(c.name))
                .returning(Company.id)
            ).scalar_one()
            for c in dataset.companies
        }
    rows = [
        raw_row(ids[c.name], dataset.response(c.name, n), day(n))
        for n in range(days)
        for c in dataset.companies
    ]
    add_raws(engine, rows)
    return len(rows)


def normalized(engine: Engine) -> int:
    with engine.connect() as conn:
        return conn.execute(
            sa.select(sa.func.count()).where(RawResponse.normalized_at.is_not(None))
        ).scalar_one()


def spawn(url: str, run_id: str, chunk_size: int) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-c", RUN, url, run_id, str(chunk_size)],
        cwd=ROOT,
        stderr=subprocess.PIPE,
    )


def test_normalizing_again_or_replaying_changes_nothing(engine: Engine) -> None:
    land_days(engine, size=60, days=3)
    first = normalize_pending(engine, shards=None, run_id="first")
    assert first.changes["added"] > 0
    before = digest(engine)
    again = normalize_pending(engine, shards=None, run_id="again")
    assert again.responses == 0 and digest(engine) == before
    skipped = renormalize(engine, shards=None, run_id="skipped")
    assert skipped.companies_skipped == first.companies and skipped.responses == 0
    assert not skipped.rows and digest(engine) == before
    # Without fingerprints the replay reads and applies every response: still no change.
    with engine.begin() as conn:
        conn.execute(sa.update(Company).values(normalized_fingerprint=None))
    replay = renormalize(engine, shards=None, run_id="replay")
    assert replay.responses == first.responses and replay.companies_skipped == 0
    assert not replay.changes and replay.rows == {"companies": {"updated": first.companies}}
    assert digest(engine) == before


def test_a_rebuild_from_raw_reproduces_every_table(engine: Engine) -> None:
    land_days(engine, size=60, days=4)
    normalize_pending(engine, shards=None, run_id="first", chunk_size=7)
    before = digest(engine)
    report = renormalize(engine, shards=None, run_id="rebuild", rebuild=True, chunk_size=500)
    assert report.changes["added"] > 0
    assert digest(engine) == before


def test_a_rebuild_of_some_shards_leaves_the_others_alone(engine: Engine) -> None:
    land_days(engine, size=60, days=2)
    normalize_pending(engine, shards=None, run_id="first")
    before = digest(engine)
    with engine.connect() as conn:
        other = conn.execute(
            sa.select(sa.func.count())
            .select_from(LicenseChange)
            .join(Company, Company.id == LicenseChange.company_id)
            .where(Company.shard != 0)
        ).scalar_one()
    renormalize(engine, shards=[0], run_id="rebuild-0", rebuild=True)
    assert digest(engine) == before
    with engine.connect() as conn:
        runs = (
            conn.execute(
                sa.select(LicenseChange.run_id, sa.func.count()).group_by(LicenseChange.run_id)
            )
            .tuples()
            .all()
        )
    assert dict(runs)["first"] == other


def test_kill_minus_nine_mid_run_then_rerun_equals_an_uninterrupted_run(
    engine: Engine, database_url: str
) -> None:
    total = land_days(engine, size=200, days=3)
    process = spawn(database_url, "killed", chunk_size=4)
    deadline = time.monotonic() + 60
    while normalized(engine) < total // 4 and process.poll() is None:
        assert time.monotonic() < deadline
        time.sleep(0.02)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    assert 0 < normalized(engine) < total, "the kill should land mid-run"
    normalize_pending(engine, shards=None, run_id="rerun")
    assert normalized(engine) == total
    recovered = digest(engine)
    renormalize(engine, shards=None, run_id="uninterrupted", rebuild=True)
    assert recovered == digest(engine)


def test_two_overlapping_runs_leave_no_duplicate_and_lose_no_change(
    engine: Engine, database_url: str
) -> None:
    total = land_days(engine, size=80, days=3)
    runs = [spawn(database_url, "one", chunk_size=12), spawn(database_url, "two", chunk_size=20)]
    for run in runs:
        _, err = run.communicate(timeout=120)
        assert run.returncode == 0, err.decode()
    assert normalized(engine) == total
    overlapped = digest(engine)
    with engine.connect() as conn:
        by_run = dict(
            conn.execute(
                sa.select(LicenseChange.run_id, sa.func.count()).group_by(LicenseChange.run_id)
            )
            .tuples()
            .all()
        )
        keys = conn.execute(sa.select(sa.func.count(sa.distinct(License.id)))).scalar_one()
    assert sum(by_run.values()) > 0 and keys > 0
    renormalize(engine, shards=None, run_id="single", rebuild=True)
    assert overlapped == digest(engine)


@pytest.mark.parametrize("chunk_size", [1, 13])
def test_results_do_not_depend_on_the_chunk_size(engine: Engine, chunk_size: int) -> None:
    land_days(engine, size=40, days=3)
    normalize_pending(engine, shards=None, run_id="small", chunk_size=chunk_size)
    small = digest(engine)
    renormalize(engine, shards=None, run_id="big", rebuild=True, chunk_size=100_000)
    assert digest(engine) == small
