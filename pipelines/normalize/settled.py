"""The identical-answer shortcut: a nightly's unchanged answers cost a hash comparison.

Almost every answer of a nightly is byte-identical to the company's previous one. Through the
tracker such an answer changes nothing but presence times — every item is already the current
version of its licence, nothing is added, removed or restored. So when the company is
*settled* (``companies.settled_fingerprint`` holds ``fingerprint.settled`` of its newest raw
response, which the full path stores only when `tracking.settles` holds: the current licences are
exactly that answer's items, as their current versions, and parsing it noticed nothing), its
pending responses are applied without reading a body when every one of them

- has a body that folds to the settled fingerprint (same bytes, same parser version),
- was fetched after ``last_response_at`` (so it is the newest answer and sorts after every
  response already folded into ``normalized_fingerprint``), and
- was not refused at fetch (a refused body is read as invalid whatever it holds).

The plan streams the pending responses' hashes and times once, without a lock, writing the
shortcuts it finds into two temporary tables as it goes (nothing of the size of the night stays
in memory). Then one transaction holding the locks of every shard concerned applies them all
with three set-based statements:

    companies      last_response_at = the newest pending fetched_at, normalized_fingerprint =
                   the fold continued — only where the fingerprint is still the one read
    raw_responses  normalized_at = now — only where it is still null
    licenses       last_seen_at = the newest pending fetched_at, for the current licences

— what the full path writes for them (tests/normalize/test_settled.py compares both paths'
tables on the suite's scenarios). If another run moved any candidate between the read and the
lock (a guard matches fewer rows than it should), the transaction is rolled back and every
candidate takes the full path, which re-reads under the lock. A response landing meanwhile is
left pending for the next run, as with the full path.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from itertools import groupby
from operator import itemgetter
from typing import Any, NamedTuple, cast

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from models import Company, License, RawResponse
from models.base import UtcDateTime, utcnow
from models.tables import ApiCall
from pipelines.juhe.errors import UNUSABLE_DETAIL_PREFIX
from pipelines.normalize import bulk, fingerprint
from pipelines.normalize.report import NormalizeReport

_RAW = cast(sa.Table, RawResponse.__table__)
_COMPANIES = cast(sa.Table, Company.__table__)
_LICENSES = cast(sa.Table, License.__table__)
_BATCH = 5000


def _temp_tables(dialect: str) -> tuple[sa.Table, sa.Table]:
    """The shortcuts found by the plan, filled while it reads, joined by the UPDATE ... FROM
    statements: one row per company (``seen_at`` in the database's stored form, see
    `PendingRow`) and one per raw response. Temporary: private to the connection."""
    metadata = sa.MetaData()
    seen_at: sa.types.TypeEngine[Any] = sa.String(32) if dialect == "sqlite" else UtcDateTime()
    companies = sa.Table(
        "zz_settled_companies",
        metadata,
        sa.Column("company_id", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("seen_at", seen_at, nullable=False),
        sa.Column("fingerprint", sa.String(64), nullable=False),
        sa.Column("read_fingerprint", sa.String(64), nullable=False),
        prefixes=["TEMPORARY"],
    )
    responses = sa.Table(
        "zz_settled_responses",
        metadata,
        sa.Column("id", sa.BigInteger, primary_key=True, autoincrement=False),
        prefixes=["TEMPORARY"],
    )
    return companies, responses


class PendingRow(NamedTuple):
    """One pending raw response with what the shortcut decides on (no body). Times are in the
    database's stored form — SQLite's fixed-width UTC text, whose order is the times' order,
    or PostgreSQL's timestamptz — comparable with each other, never converted: the plan reads
    a row per pending response and converting two times per row would cost more than the
    rest of the shortcut."""

    company_id: int
    fetched_at: Any
    raw_id: int
    shard: int
    body_sha256: str
    refused: bool | None  # the ledger says the fetch refused the body (None: no ledger row)
    settled_fingerprint: str | None
    last_response_at: Any
    normalized_fingerprint: str | None


class Shortcut(NamedTuple):
    """A settled company's pending responses, applied without parsing."""

    shard: int
    company_id: int
    seen_at: Any  # the newest pending fetched_at, in the stored form
    read_fingerprint: str  # normalized_fingerprint when the pending responses were read
    fingerprint: str  # the same, folded on over the pending responses
    raw_ids: tuple[int, ...]


def pending_rows(conn: Connection, shards: Sequence[int]) -> Iterator[PendingRow]:
    """Pending raw responses of these shards, in (company, fetched_at, id) order, with their
    company's settled state — hashes and times only, never a body; streamed."""
    raw, comp, calls = _RAW.c, _COMPANIES.c, ApiCall.__table__.c
    # Materialized first, from the partial index of pending rows: otherwise SQLite starts from
    # the shards' companies and visits every raw response they ever had (O(history)).
    pending_cte = (
        sa.select(raw.id, raw.company_id, raw.fetched_at, raw.body_sha256, raw.api_call_id)
        .where(raw.normalized_at.is_(None))
        .cte("pending")
        .prefix_with("MATERIALIZED")
    )
    pending = pending_cte.c
    query = (
        sa.select(
            pending.company_id,
            pending.fetched_at,
            pending.id,
            comp.shard,
            pending.body_sha256,
            calls.detail.like(UNUSABLE_DETAIL_PREFIX + "%"),
            comp.settled_fingerprint,
            comp.last_response_at,
            comp.normalized_fingerprint,
        )
        .select_from(pending_cte)
        .join(_COMPANIES, comp.id == pending.company_id)
        .outerjoin(ApiCall, calls.id == pending.api_call_id)
        .where(comp.shard.in_(shards))
        .order_by(pending.company_id, pending.fetched_at, pending.id)
    )
    # The driver's own cursor: a row per pending response, and SQLAlchemy's result rows cost
    # more than everything the shortcut does with one. Only integers are rendered inline.
    sql = str(query.compile(dialect=conn.dialect, compile_kwargs={"literal_binds": True}))
    driver = conn.connection.driver_connection
    assert driver is not None
    # PostgreSQL: a server-side cursor streams; SQLite's cursor always does.
    cursor = driver.cursor(name="zz_pending") if bulk.is_postgres(conn) else driver.cursor()
    try:
        cursor.execute(sql)
        while rows := cursor.fetchmany(_BATCH):
            yield from map(PendingRow._make, rows)
    finally:
        cursor.close()


def by_company(rows: Iterable[PendingRow]) -> Iterator[list[PendingRow]]:
    """Consecutive rows of one company (rows sorted by company)."""
    for _, own in groupby(rows, key=itemgetter(0)):
        yield list(own)


def shortcut(own: list[PendingRow]) -> Shortcut | None:
    """The shortcut for one company's pending rows, or None when they need the full path."""
    first = own[0]
    settled, last_response_at = first.settled_fingerprint, first.last_response_at
    if settled is None or last_response_at is None or first.normalized_fingerprint is None:
        return None
    if first.fetched_at <= last_response_at:  # rows are in fetched order: the oldest first
        return None
    for row in own:
        if row.refused or fingerprint.settled(row.body_sha256) != settled:
            return None
    folded = first.normalized_fingerprint
    for row in own:
        folded = fingerprint.step(folded, row.body_sha256)
    return Shortcut(
        first.shard,
        first.company_id,
        own[-1].fetched_at,
        first.normalized_fingerprint,
        folded,
        tuple(row.raw_id for row in own),
    )


Plan = dict[int, list[tuple[int, int]]]  # {shard: [(company_id, pending responses)]}


@dataclass
class _Found:
    """What the plan read: the full path's plan and the shortcuts written to the temp tables."""

    plan: Plan = field(default_factory=dict)
    shortcuts: list[tuple[int, int, int]] = field(default_factory=list)  # shard, company, n
    responses: int = 0


def plan_and_apply(engine: Engine, shards: Sequence[int], report: NormalizeReport) -> Plan:
    """Read the pending responses of these shards once, apply the shortcuts in one
    transaction holding their shards' locks, and return the plan of every other company for
    the full path — with the shortcuts' companies too when another run moved one of them
    since the read (then nothing was written: the full path re-reads under the lock)."""
    companies, responses = _temp_tables(engine.dialect.name)
    with engine.connect() as conn:
        for table in (companies, responses):
            table.drop(conn, checkfirst=True)
            table.create(conn)
        found = _collect(conn, shards, companies, responses)
        conn.commit()  # the read ends here; the temp tables keep their rows
        if found.shortcuts and not _apply(conn, found, companies, responses, report):
            for shard, company_id, count in found.shortcuts:
                found.plan.setdefault(shard, []).append((company_id, count))
            for planned in found.plan.values():
                planned.sort()
        for table in (companies, responses):
            table.drop(conn)
        conn.commit()
    return found.plan


def _collect(
    conn: Connection, shards: Sequence[int], companies: sa.Table, responses: sa.Table
) -> _Found:
    found = _Found()
    company_rows: list[tuple[Any, ...]] = []
    response_rows: list[tuple[int]] = []

    def flush() -> None:
        bulk.insert_rows(
            conn,
            companies,
            ("company_id", "seen_at", "fingerprint", "read_fingerprint"),
            company_rows,
        )
        bulk.insert_rows(conn, responses, ("id",), response_rows)
        company_rows.clear()
        response_rows.clear()

    for own in by_company(pending_rows(conn, shards)):
        item = shortcut(own)
        if item is None:
            found.plan.setdefault(own[0].shard, []).append((own[0].company_id, len(own)))
            continue
        found.shortcuts.append((item.shard, item.company_id, len(item.raw_ids)))
        found.responses += len(item.raw_ids)
        company_rows.append(
            (item.company_id, item.seen_at, item.fingerprint, item.read_fingerprint)
        )
        response_rows.extend((raw_id,) for raw_id in item.raw_ids)
        if len(company_rows) >= _BATCH:
            flush()
    flush()
    if bulk.is_postgres(conn):  # a temp table has no statistics until analyzed
        conn.execute(sa.text(f"ANALYZE {companies.name}, {responses.name}"))
    return found


def _apply(
    conn: Connection,
    found: _Found,
    companies: sa.Table,
    responses: sa.Table,
    report: NormalizeReport,
) -> bool:
    """The three guarded UPDATEs under the shards' locks; False (rolled back) when a guard
    matches fewer rows than expected."""
    now = utcnow()
    temp, lic, comp, raw = companies.c, _LICENSES.c, _COMPANIES.c, _RAW.c
    bulk.begin_locked(conn, *sorted({shard for shard, _, _ in found.shortcuts}))
    updated = conn.execute(
        sa.update(_COMPANIES)
        .where(comp.id == temp.company_id, comp.normalized_fingerprint == temp.read_fingerprint)
        .values(
            last_response_at=temp.seen_at, normalized_fingerprint=temp.fingerprint, updated_at=now
        )
    )
    marked = conn.execute(
        sa.update(_RAW)
        .where(raw.id.in_(sa.select(responses.c.id)), raw.normalized_at.is_(None))
        .values(normalized_at=now)
    )
    if _count(updated) != len(found.shortcuts) or _count(marked) != found.responses:
        conn.rollback()
        return False
    licences = conn.execute(
        sa.update(_LICENSES)
        .where(lic.company_id == temp.company_id, lic.removed_at.is_(None))
        .values(last_seen_at=temp.seen_at)
    )
    conn.commit()
    report.rows_updated["licenses"] += _count(licences)
    report.rows_updated["companies"] += len(found.shortcuts)
    report.rows_updated["raw_responses"] += found.responses
    report.responses += found.responses
    report.responses_unchanged += found.responses
    report.companies += len(found.shortcuts)
    return True


def _count(result: Any) -> int:
    return max(result.rowcount or 0, 0)
