"""Normalize raw responses into licences, names, versions and the change log — set-based.

Work is cut into chunks of companies of one shard (about ``chunk_size`` raw responses each).
One chunk = one transaction that holds the shard's write lock (see `bulk.begin_locked`), re-reads
which raw responses are still to do, loads the chunk's stored state in a few queries, applies
the responses in memory (`tracking`), writes only the difference with bulk statements and marks
the responses normalized. A crash loses at most the chunk in flight, which the next run redoes;
two runs on the same shard take turns per chunk and the second finds nothing left to do.

A raw body whose fetch refused it as unusable (its `api_calls.detail` starts with
``UNUSABLE_DETAIL_PREFIX``: over the size cap, nested too deep, wrong types;
docs/architecture.md#hostile-answers) is read as an ``invalid`` response whatever it holds, so a
replay applies exactly what the first normalization applied: nothing.

Before the chunks, the pending responses of *settled* companies that are byte-identical to the
answer that settled them — most of a nightly — are applied set-based without parsing (`settled`).

Each chunk also stores every one of its companies' normalized fingerprint (`fingerprint`: a fold
over the hashes of all its raw responses, read in the same statement as the bodies), so a replay
without rebuild can skip the companies whose fingerprint still matches after reading only
``raw_responses``' ids, times and hashes.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from models import Company, License, LicenseChange, LicenseName, LicenseVersion, RawResponse
from models.base import utcnow
from models.tables import ApiCall
from pipelines.juhe.errors import UNUSABLE_DETAIL_PREFIX
from pipelines.normalize import bulk, fingerprint, settled
from pipelines.normalize.parsing import grade_of, parse_response, refused_response
from pipelines.normalize.report import NormalizeReport
from pipelines.normalize.state import load_chunk_state
from pipelines.normalize.tracking import (
    ChangeEvent,
    CompanyState,
    LicenseState,
    ResponseInput,
    TrackingLog,
    apply_response,
    settles,
)
from pipelines.shards import SHARD_COUNT

COMPANIES = cast(sa.Table, Company.__table__)
LICENSES = cast(sa.Table, License.__table__)
NAMES = cast(sa.Table, LicenseName.__table__)
VERSIONS = cast(sa.Table, LicenseVersion.__table__)
CHANGES = cast(sa.Table, LicenseChange.__table__)

LICENSE_CONTENT_COLUMNS = (
    "issue_org",
    "lic_scope",
    "url",
    "validity_start",
    "validity_end",
    "validity_open_ended",
    "source_created_time",
    "source_updated_time",
    "content_hash",
)
LICENSE_PRESENCE_COLUMNS = ("first_seen_at", "last_seen_at", "removed_at")
LICENSE_COLUMNS = (
    "id",
    "company_id",
    "category",
    "lic_no",
    *LICENSE_CONTENT_COLUMNS,
    *LICENSE_PRESENCE_COLUMNS,
)
NAME_COLUMNS = ("license_id", "name", "position", "grade")
VERSION_COLUMNS = (
    "license_id",
    "valid_from",
    "valid_to",
    "content_hash",
    "content",
    "loaded_at",
    "run_id",
)
CHANGE_COLUMNS = (
    "license_id",
    "company_id",
    "change_type",
    "changed_fields",
    "old_values",
    "new_values",
    "source_updated_time",
    "detected_at",
    "run_id",
    "raw_response_id",
)


def normalize_pending(
    engine: Engine,
    *,
    shards: Sequence[int] | None,
    run_id: str,
    chunk_size: int = 1000,
    workers: int | None = None,
    shortcut: bool = True,
) -> NormalizeReport:
    """Apply every raw response not yet normalized (``normalized_at`` null) of these shards.

    ``workers``: processes that apply chunks side by side (`parallel`); None = the
    ZIZHI_NORMALIZE_WORKERS setting for a large run, one process for a small one.
    ``shortcut=False`` parses every response, even those a settled company's identical answer
    would skip (`settled`): the same tables, slower — what the tests compare the shortcut to."""
    return _run(engine, shards, run_id, chunk_size, workers, pending_only=True, shortcut=shortcut)


def renormalize(
    engine: Engine,
    *,
    shards: Sequence[int] | None,
    run_id: str,
    chunk_size: int = 1000,
    rebuild: bool = False,
    workers: int | None = None,
) -> NormalizeReport:
    """Replay ALL raw responses of these shards in fetched order.

    Into the existing tables this changes nothing when nothing changed (and fills in whatever is
    missing). Companies whose stored normalized fingerprint equals the fold of their raw
    responses' hashes are skipped without reading a body (``report.companies_skipped``): they
    hold exactly what the replay would leave. With ``rebuild=True`` fingerprints are ignored:
    the shards' licences (and, by cascade, names, versions and changes) are deleted and
    ``companies.last_response_at``/``license_count``/``normalized_fingerprint`` reset first — the
    way to apply a parsing fix: the result equals a first normalization of the same raw rows.
    (Bumping ``fingerprint.PARSER_VERSION`` makes a plain renormalize replay every company.)
    """
    if rebuild:
        _wipe(engine, _shard_list(shards))
    return _run(
        engine,
        shards,
        run_id,
        chunk_size,
        workers,
        pending_only=False,
        skip_matching=not rebuild,
    )


def _shard_list(shards: Sequence[int] | None) -> list[int]:
    return sorted(set(shards)) if shards is not None else list(range(SHARD_COUNT))


def _wipe(engine: Engine, shards: list[int]) -> None:
    for shard in shards:
        with engine.connect() as conn:
            bulk.begin_locked(conn, shard)
            in_shard = sa.select(Company.id).where(Company.shard == shard).scalar_subquery()
            conn.execute(sa.delete(License).where(License.company_id.in_(in_shard)))
            conn.execute(
                sa.update(Company)
                .where(Company.shard == shard)
                .values(
                    last_response_at=None,
                    license_count=0,
                    normalized_fingerprint=None,
                    settled_fingerprint=None,
                )
            )
            conn.commit()


def _run(
    engine: Engine,
    shards: Sequence[int] | None,
    run_id: str,
    chunk_size: int,
    workers: int | None,
    *,
    pending_only: bool,
    skip_matching: bool = False,
    shortcut: bool = False,
) -> NormalizeReport:
    from pipelines.normalize import parallel  # it imports this module

    started = time.perf_counter()
    report = NormalizeReport()
    if skip_matching:
        plan = _plan_unmatched(engine, _shard_list(shards), report)
    elif shortcut:
        plan = settled.plan_and_apply(engine, _shard_list(shards), report)
    else:
        plan = _plan(engine, _shard_list(shards), pending_only)
    chunks = list(_chunks(plan, chunk_size))
    responses = sum(count for companies in plan.values() for _, count in companies)
    report.workers = processes = parallel.worker_count(workers, responses)
    if processes > 1:
        report.merge(parallel.normalize_chunks(engine, chunks, run_id, pending_only, processes))
    else:
        for chunk_shards, company_ids in chunks:
            with engine.connect() as conn:
                bulk.begin_locked(conn, *chunk_shards)
                normalize_chunk(conn, company_ids, run_id, pending_only, report)
                conn.commit()
    report.seconds = time.perf_counter() - started
    return report


def _plan(
    engine: Engine, shards: list[int], pending_only: bool
) -> dict[int, list[tuple[int, int]]]:
    """{shard: [(company_id, raw responses to apply)]}, by company id, in one query."""
    raw = RawResponse.__table__.c
    query = (
        sa.select(Company.shard, raw.company_id, sa.func.count())
        .join(Company, Company.id == raw.company_id)
        .where(Company.shard.in_(shards))
        .group_by(Company.shard, raw.company_id)
        .order_by(raw.company_id)
    )
    if pending_only:
        query = query.where(raw.normalized_at.is_(None))
    plan: dict[int, list[tuple[int, int]]] = {}
    with engine.connect() as conn:
        for shard, company_id, count in conn.execute(query):
            plan.setdefault(shard, []).append((company_id, count))
    return plan


def _plan_unmatched(
    engine: Engine, shards: list[int], report: NormalizeReport
) -> dict[int, list[tuple[int, int]]]:
    """Like `_plan` for a full replay, without the companies whose stored fingerprint equals
    the fold of their raw responses' hashes (counted as skipped). Two queries for all the
    shards — the companies' stored fingerprints, then (company_id, body_sha256) streamed in
    fold order — never a body, and one pass over `raw_responses` (a query per shard would
    scan it once per shard on PostgreSQL)."""
    raw, comp = RawResponse.__table__.c, COMPANIES.c
    plan: dict[int, list[tuple[int, int]]] = {}
    with engine.connect() as conn:
        stored: dict[int, tuple[int, str | None]] = {
            company_id: (shard, fp)
            for company_id, shard, fp in conn.execute(
                sa.select(comp.id, comp.shard, comp.normalized_fingerprint).where(
                    comp.shard.in_(shards)
                )
            ).tuples()
        }
        hashes = conn.execution_options(yield_per=20_000).execute(
            sa.select(raw.company_id, raw.body_sha256)
            .join(COMPANIES, comp.id == raw.company_id)
            .where(comp.shard.in_(shards))
            .order_by(raw.company_id, raw.fetched_at, raw.id)
        )
        for company_id, expected, count in fingerprint.fold_sorted(hashes.tuples()):
            if company_id not in stored:
                continue  # a company added since the first query: not part of this replay
            shard, fp = stored[company_id]
            if fp == expected:
                report.companies_skipped += 1
            else:
                plan.setdefault(shard, []).append((company_id, count))
    return plan


Chunk = tuple[tuple[int, ...], list[int]]  # (the shards whose locks it takes, company ids)


def _chunks(plan: dict[int, list[tuple[int, int]]], chunk_size: int) -> Iterator[Chunk]:
    """Consecutive companies, shard after shard, holding about chunk_size responses (at least
    one company). A chunk may span shards and then takes all their locks (ascending), so a
    small plan — a nightly's few changed companies — is one transaction, not one per shard."""
    shards: list[int] = []
    chunk: list[int] = []
    held = 0
    for shard in sorted(plan):
        for company_id, count in plan[shard]:
            if chunk and held + count > chunk_size:
                yield tuple(shards), chunk
                shards, chunk, held = [], [], 0
            if not shards or shards[-1] != shard:
                shards.append(shard)
            chunk.append(company_id)
            held += count
    if chunk:
        yield tuple(shards), chunk


def _read_responses(
    conn: Connection, company_ids: list[int], pending_only: bool, report: NormalizeReport
) -> tuple[list[ResponseInput], list[int], dict[int, str], dict[int, tuple[int, str]]]:
    """The chunk's raw responses, parsed, in (company, fetched_at, id) order — read under lock —
    the ids of those not yet marked normalized, each company's fingerprint over ALL its raw
    responses (same statement, so exactly the rows this chunk saw) and its newest response
    (id, body_sha256) in that order. With ``pending_only`` the bodies of responses already
    normalized are not read."""
    raw = RawResponse.__table__.c
    body = (
        sa.case((raw.normalized_at.is_(None), raw.body), else_=sa.null())
        if pending_only
        else raw.body
    )
    calls = ApiCall.__table__.c
    query = (
        sa.select(
            raw.id,
            raw.company_id,
            raw.fetched_at,
            raw.body_sha256,
            raw.normalized_at,
            body.label("body"),
            calls.detail.like(UNUSABLE_DETAIL_PREFIX + "%").label("refused"),
        )
        .select_from(RawResponse)
        .outerjoin(ApiCall, calls.id == raw.api_call_id)
        .where(raw.company_id.in_(company_ids))
        .order_by(raw.company_id, raw.fetched_at, raw.id)
    )
    responses, pending = [], []
    fingerprints: dict[int, str] = {}
    newest: dict[int, tuple[int, str]] = {}
    start = fingerprint.initial()
    for row in conn.execute(query):
        fingerprints[row.company_id] = fingerprint.step(
            fingerprints.get(row.company_id, start), row.body_sha256
        )
        newest[row.company_id] = (row.id, row.body_sha256)
        if pending_only and row.normalized_at is not None:
            continue
        if row.refused:
            parsed = refused_response()
        else:
            parsed = parse_response(row.body, _aware(row.fetched_at))
        report.count_response(parsed, row.company_id, row.fetched_at)
        responses.append(ResponseInput(row.id, row.company_id, row.fetched_at, parsed))
        if row.normalized_at is None:
            pending.append(row.id)
    return responses, pending, fingerprints, newest


def _aware(moment: dt.datetime) -> dt.datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=dt.UTC)


def _stale_fingerprints(conn: Connection, fingerprints: dict[int, str]) -> set[int]:
    """The companies whose stored fingerprint differs from (or lacks) the computed one."""
    comp = COMPANIES.c
    ids = sorted(fingerprints)
    stored: dict[int, str | None] = {}
    for start in range(0, len(ids), 5000):
        part = ids[start : start + 5000]
        stored.update(
            conn.execute(sa.select(comp.id, comp.normalized_fingerprint).where(comp.id.in_(part)))
            .tuples()
            .all()
        )
    return {cid for cid, fp in fingerprints.items() if stored.get(cid) != fp}


@dataclass
class ChunkWork:
    """A chunk applied in memory: what `write_chunk` needs to write it."""

    responses: list[ResponseInput]
    pending: list[int]
    fingerprints: dict[int, str]
    newest: dict[int, tuple[int, str]]  # (raw id, body_sha256) of each company's newest response
    companies: dict[int, CompanyState]
    log: TrackingLog

    def settled_fingerprints(self) -> dict[int, str | None]:
        """Every read company's ``settled_fingerprint`` after this chunk: `settled` of its
        newest response when the chunk applied that response last and it `settles` the
        company; None otherwise, and None for a company the chunk skipped as a no-op whose
        responses changed (its newest response may no longer be the settling one). A no-op
        company without new responses is left out: it keeps what it has."""
        last: dict[int, ResponseInput] = {r.company_id: r for r in self.responses}
        result: dict[int, str | None] = {}
        for company_id, (raw_id, body_sha256) in self.newest.items():
            company = self.companies.get(company_id)
            response = last.get(company_id)
            if company is None:
                if response is not None:
                    result[company_id] = None
            elif (
                response is not None
                and response.raw_response_id == raw_id
                and settles(company, response)
            ):
                result[company_id] = fingerprint.settled(body_sha256)
            else:
                result[company_id] = None
        return result


def compute_chunk(
    conn: Connection, company_ids: list[int], pending_only: bool, report: NormalizeReport
) -> ChunkWork | None:
    """Read the chunk's raw responses and stored state and apply them in memory (no write);
    None when none of the chunk's responses is left to apply."""
    responses, pending, fingerprints, newest = _read_responses(
        conn, company_ids, pending_only, report
    )
    if not responses:
        return None
    companies = load_chunk_state(conn, responses)
    log = TrackingLog()
    for response in responses:
        if response.company_id in companies:
            apply_response(companies[response.company_id], response, log)
    return ChunkWork(responses, pending, fingerprints, newest, companies, log)


def write_chunk(conn: Connection, work: ChunkWork, run_id: str, report: NormalizeReport) -> None:
    """Write an applied chunk; the caller holds the shard's lock and commits."""
    stale = _stale_fingerprints(conn, work.fingerprints)
    _write(conn, work.companies, work.log, run_id, report)
    _write_companies(
        conn, work.companies, work.fingerprints, work.settled_fingerprints(), stale, report
    )
    _mark_normalized(conn, work.pending, report)
    report.anomalies.extend(work.log.anomalies)
    report.changes.update(change.change_type for change in work.log.changes)
    report.companies += len({r.company_id for r in work.responses})
    report.companies_changed += len(work.companies)
    report.chunks += 1


def normalize_chunk(
    conn: Connection,
    company_ids: list[int],
    run_id: str,
    pending_only: bool,
    report: NormalizeReport,
) -> None:
    """Read, apply and write one chunk; the caller holds the shard's lock and commits."""
    work = compute_chunk(conn, company_ids, pending_only, report)
    if work is not None:
        write_chunk(conn, work, run_id, report)


def _mark_normalized(conn: Connection, ids: list[int], report: NormalizeReport) -> None:
    now = utcnow()
    raw = RawResponse.__table__.c
    for start in range(0, len(ids), 5000):
        part = ids[start : start + 5000]
        conn.execute(sa.update(RawResponse).where(raw.id.in_(part)).values(normalized_at=now))
    report.rows_updated["raw_responses"] += len(ids)


# ---------------------------------------------------------------------------- writing


def _license_row(lic: LicenseState) -> tuple[Any, ...]:
    rec = lic.record
    assert rec is not None
    return (
        lic.id,
        lic.company_id,
        rec.category,
        rec.lic_no,
        rec.issue_org,
        rec.lic_scope,
        rec.url,
        rec.validity_start,
        rec.validity_end,
        rec.open_ended,
        rec.created_time,
        rec.updated_time,
        rec.content_hash,
        *lic.presence,
    )


def _name_rows(licences: list[LicenseState]) -> list[tuple[Any, ...]]:
    return [
        (lic.id, name, position, grade_of(name))
        for lic in licences
        if lic.record is not None
        for position, name in enumerate(lic.record.names)
    ]


def _write_licenses(
    conn: Connection, licences: list[LicenseState], report: NormalizeReport
) -> None:
    table = LICENSES
    new = [lic for lic in licences if lic.id is None]
    for lic, new_id in zip(new, bulk.allocate_ids(conn, table, len(new)), strict=True):
        lic.id = new_id
    report.rows_inserted["licenses"] += bulk.insert_rows(
        conn, table, LICENSE_COLUMNS, [_license_row(lic) for lic in new]
    )
    stored = [lic for lic in licences if lic.stored_presence is not None and lic.is_dirty]
    with_content = [lic for lic in stored if lic.record is not None]
    presence_only = [lic for lic in stored if lic.record is None]
    report.rows_updated["licenses"] += bulk.update_rows(
        conn,
        table,
        ["id"],
        LICENSE_CONTENT_COLUMNS + LICENSE_PRESENCE_COLUMNS,
        [(row[0], *row[4:]) for row in map(_license_row, with_content)],
    )
    report.rows_updated["licenses"] += bulk.update_rows(
        conn,
        table,
        ["id"],
        LICENSE_PRESENCE_COLUMNS,
        [(lic.id, *lic.presence) for lic in presence_only],
    )
    report.rows_deleted["license_names"] += bulk.delete_where_in(
        conn, NAMES, "license_id", [lic.id for lic in with_content]
    )
    report.rows_inserted["license_names"] += bulk.insert_rows(
        conn, NAMES, NAME_COLUMNS, _name_rows(new + with_content)
    )


def _write_versions(
    conn: Connection, licences: list[LicenseState], run_id: str, report: NormalizeReport
) -> None:
    """valid_to updates first (closing the open version), then inserts: one open per licence."""
    closes, inserts = [], []
    loaded_at = utcnow()
    for lic in licences:
        for version in lic.versions.values():
            if not version.persisted:
                content = version.record.content_json() if version.record else None
                inserts.append(
                    (
                        lic.id,
                        version.valid_from,
                        version.valid_to,
                        version.content_hash,
                        content,
                        loaded_at,
                        run_id,
                    )
                )
            elif version.valid_to != version.stored_valid_to:
                closes.append((lic.id, version.valid_from, version.valid_to))
    report.rows_updated["license_versions"] += bulk.update_rows(
        conn, VERSIONS, ["license_id", "valid_from"], ["valid_to"], closes
    )
    report.rows_inserted["license_versions"] += bulk.insert_rows(
        conn, VERSIONS, VERSION_COLUMNS, inserts
    )


def _json(value: Any) -> str | None:
    return None if value is None else json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _new_values_json(change: ChangeEvent) -> str | None:
    """An `added` change carries the version's content: reuse its serialized text."""
    for version in change.license.versions.values():
        if version.record is not None and version.record.content is change.new_values:
            return version.record.content_json()
    return _json(change.new_values)


def _write_changes(
    conn: Connection, log: TrackingLog, run_id: str, report: NormalizeReport
) -> None:
    rows = [
        (
            c.license.id,
            c.license.company_id,
            c.change_type,
            _json(c.changed_fields),
            _json(c.old_values),
            _new_values_json(c),
            c.source_updated_time,
            c.detected_at,
            run_id,
            c.raw_response_id,
        )
        for c in log.changes
    ]
    report.rows_inserted["license_changes"] += bulk.insert_rows(conn, CHANGES, CHANGE_COLUMNS, rows)


def _write_companies(
    conn: Connection,
    companies: dict[int, CompanyState],
    fingerprints: dict[int, str],
    settled_fps: dict[int, str | None],
    stale: set[int],
    report: NormalizeReport,
) -> None:
    """The chunk's company rows: the changed ones with their new fingerprints in the same
    statement, then the fingerprints alone where only they are stale."""
    now = utcnow()
    rows = [
        (c.id, c.last_response_at, c.license_count, fingerprints[c.id], settled_fps[c.id], now)
        for c in companies.values()
        if c.refresh_count() | (settled_fps[c.id] != c.settled_fingerprint)
    ]
    report.rows_updated["companies"] += bulk.update_rows(
        conn,
        COMPANIES,
        ["id"],
        [
            "last_response_at",
            "license_count",
            "normalized_fingerprint",
            "settled_fingerprint",
            "updated_at",
        ],
        rows,
    )
    written = {row[0] for row in rows}
    unsettled = {cid for cid, fp in settled_fps.items() if fp is None and cid not in companies}
    report.rows_updated["companies"] += bulk.update_rows(
        conn,
        COMPANIES,
        ["id"],
        ["normalized_fingerprint", "settled_fingerprint", "updated_at"],
        [
            (cid, fingerprints[cid], settled_fps.get(cid), now)
            for cid in sorted((stale | unsettled) - written)
        ],
    )


def _write(
    conn: Connection,
    companies: dict[int, CompanyState],
    log: TrackingLog,
    run_id: str,
    report: NormalizeReport,
) -> None:
    touched = [lic for c in companies.values() for lic in c.licenses.values() if lic.needs_write]
    _write_licenses(conn, touched, report)
    _write_versions(conn, touched, run_id, report)
    _write_changes(conn, log, run_id, report)
