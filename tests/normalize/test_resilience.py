"""Idempotence, rebuild from raw, kill -9 mid-run and two overlapping runs (both backends)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from juhe_sandbox.dataset import Dataset
from models import Company, License, LicenseChange, RawResponse
from pipelines.normalize import normalize_pending, renormalize
from pipelines.shards import shard_of
from tests.conftest import wait_until
from tests.normalize import add_raws, day, digest, raw_row

ROOT = Path(__file__).resolve().parents[2]
# A normalize run in its own process. With an event name and a count (argv 4-5), the process
# stops itself (SIGSTOP) at that SQLAlchemy connection event's n-th firing, so the test can act
# at a known point of the run instead of racing it: "begin" fires before a transaction's first
# statement (the 1st is the plan's read, the 2nd the first chunk's), "commit" before a chunk's
# transaction commits, its writes done.
RUN = """
import os, signal, sys
import sqlalchemy as sa
from pipelines.db import get_engine
from pipelines.normalize import normalize_pending
url, run_id, chunk_size, event, at = sys.argv[1], sys.argv[2], int(sys.argv[3]), *sys.argv[4:6]
fired = 0
def pause(conn):
    global fired
    fired += 1
    if fired == int(at):
        os.kill(os.getpid(), signal.SIGSTOP)
if event != "-":
    sa.event.listen(sa.engine.Engine, event, pause)
normalize_pending(get_engine(url), shards=None, run_id=run_id, chunk_size=chunk_size)
"""
WAIT = 120  # seconds; generous: each of these waits takes about a second


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


Spawn = Callable[..., subprocess.Popen[bytes]]


@pytest.fixture
def spawn(database_url: str) -> Iterator[Spawn]:
    """Start normalize runs on the test database: spawn(run_id, chunk_size, pause_at=(event,
    n)) stops itself there (see RUN). Runs still alive after the test are killed."""
    started: list[subprocess.Popen[bytes]] = []

    def start(
        run_id: str, chunk_size: int, pause_at: tuple[str, int] = ("-", 0)
    ) -> subprocess.Popen[bytes]:
        event, count = pause_at
        args = [database_url, run_id, str(chunk_size), event, str(count)]
        started.append(
            subprocess.Popen([sys.executable, "-c", RUN, *args], cwd=ROOT, stderr=subprocess.PIPE)
        )
        return started[-1]

    yield start
    for process in started:
        if process.poll() is None:
            process.kill()  # SIGKILL ends a stopped process too
            process.communicate()


def wait_until_paused(process: subprocess.Popen[bytes]) -> None:
    def paused() -> bool:
        # WNOWAIT: only look; the process stays waitable for Popen.
        flags = os.WEXITED | os.WSTOPPED | os.WNOHANG | os.WNOWAIT
        state = os.waitid(os.P_PID, process.pid, flags)
        if state is None:
            return False
        assert state.si_code == os.CLD_STOPPED, f"the run ended before its pause: {finish(process)}"
        return True

    wait_until(paused, within=WAIT, what="the normalize run to reach its pause")


def finish(process: subprocess.Popen[bytes]) -> str:
    """Wait for a run to end; its stderr."""
    try:
        _, err = process.communicate(timeout=WAIT)
    except subprocess.TimeoutExpired:
        process.kill()
        pytest.fail(f"a normalize run took over {WAIT} s: this machine is too slow to judge")
    return err.decode()


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
    engine: Engine, spawn: Spawn
) -> None:
    total = land_days(engine, size=200, days=3)
    # Paused with its 50th chunk written but not committed (of 200, a company each), then killed.
    process = spawn("killed", chunk_size=4, pause_at=("commit", 50))
    wait_until_paused(process)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    assert 0 < normalized(engine) < total, "the kill should land mid-run"
    normalize_pending(engine, shards=None, run_id="rerun")
    assert normalized(engine) == total
    recovered = digest(engine)
    renormalize(engine, shards=None, run_id="uninterrupted", rebuild=True)
    assert recovered == digest(engine)


def test_two_overlapping_runs_leave_no_duplicate_and_lose_no_change(
    engine: Engine, spawn: Spawn
) -> None:
    total = land_days(engine, size=80, days=3)
    # Both runs plan the whole backlog and pause before their first chunk; then they go on
    # together, so every chunk is wanted by both whatever the machine's speed.
    runs = [
        spawn("one", chunk_size=12, pause_at=("begin", 2)),
        spawn("two", chunk_size=20, pause_at=("begin", 2)),
    ]
    for run in runs:
        wait_until_paused(run)
    for run in runs:
        os.kill(run.pid, signal.SIGCONT)
    for run in runs:
        err = finish(run)
        assert run.returncode == 0, err
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
