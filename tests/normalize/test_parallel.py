"""Normalizing with several worker processes gives the tables one process gives (both backends),
and a chunk whose companies another run wrote meanwhile is applied again under the lock."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from models import LicenseChange
from pipelines.normalize import normalize_pending, parallel, renormalize
from pipelines.normalize.report import NormalizeReport
from pipelines.settings import SettingsError
from tests.normalize import digest
from tests.normalize.test_resilience import land_days, normalized

# Starts worker processes: one xdist worker runs this group in sequence (see run_suites.sh).
pytestmark = pytest.mark.xdist_group("heavy")


def changes_by_type(engine: Engine) -> dict[str, int]:
    with engine.connect() as conn:
        query = sa.select(LicenseChange.change_type, sa.func.count()).group_by(
            LicenseChange.change_type
        )
        return dict(conn.execute(query).tuples().all())


def test_two_workers_write_what_one_process_writes(engine: Engine) -> None:
    total = land_days(engine, size=60, days=4)
    report = normalize_pending(engine, shards=None, run_id="workers", chunk_size=7, workers=2)
    assert report.responses == total and normalized(engine) == total
    assert report.chunks > 2 and report.changes["added"] > 0
    parallel_tables, parallel_changes = digest(engine), changes_by_type(engine)
    assert parallel_changes == dict(report.changes)

    single = renormalize(engine, shards=None, run_id="single", rebuild=True, workers=1)
    assert digest(engine) == parallel_tables
    assert changes_by_type(engine) == parallel_changes
    assert single.responses == report.responses and single.changes == report.changes
    assert sorted(map(repr, single.anomalies)) == sorted(map(repr, report.anomalies))

    rebuilt = renormalize(engine, shards=None, run_id="rebuild", rebuild=True, workers=2)
    assert digest(engine) == parallel_tables and rebuilt.changes == report.changes


def test_a_chunk_another_run_wrote_meanwhile_is_applied_again_under_the_lock(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    total = land_days(engine, size=30, days=3)
    compute = parallel.compute_chunk

    def compute_then_let_another_run_write(*args, **kwargs):  # type: ignore[no-untyped-def]
        work = compute(*args, **kwargs)
        assert work is not None and work.log.changes  # the chunk had work to write...
        normalize_pending(engine, shards=None, run_id="meanwhile", workers=1)
        return work

    monkeypatch.setattr(parallel, "compute_chunk", compute_then_let_another_run_write)
    shard, company_ids = _first_chunk(engine)
    with engine.connect() as conn:
        late = parallel.normalize_chunk_optimistic(
            conn, [shard], company_ids, "late", pending_only=True, report=NormalizeReport()
        )
    # ...but the other run wrote those companies first: redone under the lock, nothing is left.
    assert late.responses == 0 and late.rows_written == 0 and not late.changes
    assert normalized(engine) == total
    tables, changes = digest(engine), changes_by_type(engine)
    monkeypatch.undo()
    renormalize(engine, shards=None, run_id="clean", rebuild=True)
    assert digest(engine) == tables and changes_by_type(engine) == changes


def _first_chunk(engine: Engine) -> tuple[int, list[int]]:
    with engine.connect() as conn:
        shard = conn.execute(sa.text("SELECT MIN(shard) FROM companies")).scalar_one()
        ids = conn.execute(
            sa.text("SELECT id FROM companies WHERE shard = :s ORDER BY id"), {"s": shard}
        ).scalars()
        return int(shard), list(ids)


def test_the_number_of_workers(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ZIZHI_NORMALIZE_WORKERS", raising=False)
    assert parallel.worker_count(None, 50) == 1  # a small run stays in one process
    assert parallel.worker_count(3, 50) == 3
    assert parallel.worker_count(None, parallel.PARALLEL_MIN_RESPONSES) >= 1
    monkeypatch.setenv("ZIZHI_NORMALIZE_WORKERS", "2")
    assert parallel.worker_count(None, 10**6) == 2
    monkeypatch.setenv("ZIZHI_NORMALIZE_WORKERS", "two")
    with pytest.raises(SettingsError, match="ZIZHI_NORMALIZE_WORKERS"):
        parallel.worker_count(None, 10**6)
