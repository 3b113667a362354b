"""Applying a large plan's chunks in several processes, side by side.

Most of a chunk's time is Python (parse, apply, build rows); only its writes need the shard's
lock. So a worker reads and applies a chunk without the lock, then takes the lock and writes it
— if nothing changed meanwhile. "Nothing changed" is checked on the chunk's company rows: every
normalization that writes a company's licences also writes its row (new `updated_at`, new
`normalized_fingerprint`), and so does a rebuild's wipe, in the same transaction. If any row
differs from the one read before applying, the worker applies the chunk again under the lock
(the one-process way). Either way a chunk commits as one transaction, so a crash, an overlapping
run or a worker killed mid-chunk leaves what the one-process path would leave.

Workers are spawned (not forked: the Dagster step that calls this may run threads) and each
keeps its own engine. A plan smaller than PARALLEL_MIN_RESPONSES stays in one process: starting
workers costs about a second.
"""

from __future__ import annotations

import itertools
import multiprocessing
import os
from collections.abc import Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from models import Company
from pipelines.normalize import bulk
from pipelines.normalize.report import NormalizeReport
from pipelines.normalize.state import slices
from pipelines.normalize.writer import compute_chunk, normalize_chunk, write_chunk
from pipelines.settings import normalize_workers

PARALLEL_MIN_RESPONSES = 10_000
MAX_DEFAULT_WORKERS = 4

_engines: dict[str, Engine] = {}  # one per database, per worker process


def worker_count(requested: int | None, responses: int) -> int:
    """Processes for a plan of this many raw responses: `requested` when given, else
    ZIZHI_NORMALIZE_WORKERS (default: the CPUs, at most 4) for a large plan and 1 for a
    small one."""
    if requested is not None:
        return max(1, requested)
    if responses < PARALLEL_MIN_RESPONSES:
        return 1
    default = min(MAX_DEFAULT_WORKERS, os.cpu_count() or 1)
    return normalize_workers() or default


def normalize_chunks(
    engine: Engine,
    chunks: Sequence[tuple[tuple[int, ...], list[int]]],
    run_id: str,
    pending_only: bool,
    workers: int,
) -> NormalizeReport:
    """Apply (shards, company ids) chunks in `workers` processes; the merged report."""
    url = engine.url.render_as_string(hide_password=False)
    report = NormalizeReport()
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(workers, mp_context=context) as pool:
        futures: list[Future[NormalizeReport]] = [
            pool.submit(_chunk_task, url, shards, company_ids, run_id, pending_only)
            for shards, company_ids in _round_robin(chunks)
        ]
        try:
            for future in futures:
                report.merge(future.result())
        except BaseException:
            pool.shutdown(cancel_futures=True)
            raise
    return report


def _round_robin(
    chunks: Sequence[tuple[tuple[int, ...], list[int]]],
) -> list[tuple[tuple[int, ...], list[int]]]:
    """The chunks shard by shard in turn, so workers seldom wait for the same shard's lock."""
    by_shard: dict[tuple[int, ...], list[tuple[tuple[int, ...], list[int]]]] = {}
    for chunk in chunks:
        by_shard.setdefault(chunk[0], []).append(chunk)
    rounds = itertools.zip_longest(*by_shard.values())
    return [chunk for round_ in rounds for chunk in round_ if chunk is not None]


def _chunk_task(
    url: str, shards: tuple[int, ...], company_ids: list[int], run_id: str, pending_only: bool
) -> NormalizeReport:
    """A worker's task: one chunk, on the worker's own engine."""
    from pipelines.db import get_engine

    engine = _engines.get(url) or _engines.setdefault(url, get_engine(url))
    report = NormalizeReport()
    with engine.connect() as conn:
        return normalize_chunk_optimistic(conn, shards, company_ids, run_id, pending_only, report)


def normalize_chunk_optimistic(
    conn: Connection,
    shards: Sequence[int],
    company_ids: list[int],
    run_id: str,
    pending_only: bool,
    report: NormalizeReport,
) -> NormalizeReport:
    """Apply a chunk without the lock, then write it under the lock if its companies' rows are
    unchanged, else redo it under the lock. Returns the report of what was written."""
    before = company_rows(conn, company_ids)
    work = compute_chunk(conn, company_ids, pending_only, report)
    conn.rollback()  # end the reading transaction before waiting for the lock
    if work is None:
        return report
    bulk.begin_locked(conn, *shards)
    if company_rows(conn, company_ids) == before:
        write_chunk(conn, work, run_id, report)
    else:
        report = NormalizeReport()
        normalize_chunk(conn, company_ids, run_id, pending_only, report)
    conn.commit()
    return report


def company_rows(conn: Connection, company_ids: list[int]) -> list[tuple[Any, ...]]:
    """What every write to these companies' normalized state changes: id, fingerprint and
    updated_at of each company row."""
    rows: list[tuple[Any, ...]] = []
    for part in slices(sorted(company_ids)):
        query = (
            sa.select(Company.id, Company.normalized_fingerprint, Company.updated_at)
            .where(Company.id.in_(part))
            .order_by(Company.id)
        )
        rows.extend(conn.execute(query).tuples())
    return rows
