"""Write a validated roster into `companies` and `roster_rejects`, set-based, in one transaction.

- New companies are inserted `pending` and active; known ones get the roster's name, identifiers,
  query, shard and source (fetch state is never touched); unchanged ones are not written at all,
  so storing the same roster twice changes nothing.
- A company known by its name whose row now carries a 统一社会信用代码 is re-keyed to it (its
  history stays with it) instead of being replaced by a new company.
- Only a roster read completely deactivates the companies it no longer lists (history kept).
- Rejects are keyed by a fingerprint, so re-reading an unchanged roster adds no reject rows.

A roster has hundreds of thousands of rows and is stored again every run, mostly unchanged: the
stored companies are read once through the driver and compared in memory, so an unchanged
roster costs one read and writes nothing; the companies to write go to a temporary table by the
driver's bulk path (COPY on PostgreSQL, executemany on SQLite) and into `companies` with one
INSERT ... SELECT ... ON CONFLICT statement.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine

from models.tables import Company
from models.tables import RosterReject as RejectTable
from pipelines.roster.identifiers import match_key
from pipelines.roster.validate import RosterEntry, RosterReject, RosterResult
from pipelines.shards import shard_of

COMPANIES = Company.metadata.tables[Company.__tablename__]
REJECTS = RejectTable.metadata.tables[RejectTable.__tablename__]
CHUNK_ROWS = 5000
# SQLite's page cache while a roster is stored. Its default (2 MB) holds a small part of the
# companies table and its unique indexes, which 200,000 new companies (in roster order, so in
# no key's order) touch all over: pages are spilled and read back all along, a quarter of the
# time. The cache only grows as far as it is used.
SQLITE_CACHE_KIB = 64 * 1024
# Bound parameters one statement may carry: SQLite's SQLITE_MAX_VARIABLE_NUMBER, libpq's limit.
MAX_PARAMETERS = {"sqlite": 32766, "postgresql": 65535}


@dataclass(frozen=True)
class RosterStoreReport:
    """What storing a roster did; `shards_touched` are shards with new or reactivated companies."""

    total_rows: int
    accepted: int
    duplicates_merged: int
    rejected: int
    inserted: int
    updated: int  # known companies written: changed roster fields or reactivated
    reactivated: int
    deactivated: int
    rekeyed: int  # known by name before, now by their 统一社会信用代码
    new_rejects: int
    complete: bool
    deactivation_note: str
    shards_touched: frozenset[int]
    reasons: dict[str, int]


def store_roster(engine: Engine, result: RosterResult, *, now: dt.datetime) -> RosterStoreReport:
    """Upsert companies, deactivate dropped ones (complete roster only), add the rejects."""
    listed = {entry.match_key for entry in result.entries}
    with engine.begin() as conn, _sqlite_page_cache(conn):
        known = _known_companies(conn)
        rekeyed = _rekey(conn, known, result.entries, listed, now)
        plan = _plan(known, result.entries)
        _upsert_companies(conn, plan.writes, now)
        deactivated, note = _deactivate(conn, known, result, listed, plan, now)
        new_rejects = _insert_rejects(conn, result.rejects, now)
    stats = result.stats
    return RosterStoreReport(
        total_rows=stats.get("total_rows", 0),
        accepted=len(result.entries),
        duplicates_merged=stats.get("duplicates_merged", 0),
        rejected=len(result.rejects),
        inserted=plan.inserted,
        updated=len(plan.writes) - plan.inserted,
        reactivated=plan.reactivated,
        deactivated=deactivated,
        rekeyed=rekeyed,
        new_rejects=new_rejects,
        complete=result.complete,
        deactivation_note=note,
        shards_touched=frozenset(plan.shards_touched),
        reasons=result.reasons,
    )


@contextmanager
def _sqlite_page_cache(conn: Connection) -> Iterator[None]:
    """SQLITE_CACHE_KIB of page cache on a SQLite connection for the block, then as it was."""
    if conn.dialect.name != "sqlite":
        yield
        return
    previous = int(conn.exec_driver_sql("PRAGMA cache_size").scalar_one())
    conn.exec_driver_sql(f"PRAGMA cache_size = -{SQLITE_CACHE_KIB}")
    try:
        yield
    finally:
        conn.exec_driver_sql(f"PRAGMA cache_size = {previous}")


# --- reading what is there ----------------------------------------------------------------

# A stored company, reduced to what decides whether the roster changes it.
_STORED_COLUMNS = ("match_key", "name", "query", "roster_source", "uscc", "reg_no", "active")
_NAME, _QUERY, _SOURCE, _USCC, _REG_NO, _ACTIVE = range(1, 7)
Row = tuple[Any, ...]  # a row of _STORED_COLUMNS as the driver returns it (`active` may be 0/1)
Known = dict[str, Row]  # by match key


def _known_companies(conn: Connection) -> Known:
    """Every stored company by match key, read by the driver's cursor: on every run this read
    is most of the cost of storing an unchanged roster, and SQLAlchemy's rows would double it."""
    select = sa.select(*(COMPANIES.c[name] for name in _STORED_COLUMNS))
    cursor = conn.connection.cursor()
    try:
        cursor.execute(str(select.compile(dialect=conn.dialect)))
        rows = cursor.fetchall()
    finally:
        cursor.close()
    return {row[0]: row for row in rows}


# --- re-keying companies that gained a 统一社会信用代码 -----------------------------------


def _rekey_pairs(
    known: Known, entries: Sequence[RosterEntry], roster_keys: set[str]
) -> list[tuple[str, str]]:
    """(old key, USCC) for companies stored under another key that the roster now gives a USCC.

    Either the stored row already has that USCC under another key, or it was stored by name
    without any USCC and the roster row has the same name and now a USCC. `roster_keys` are
    the entries' match keys.
    """
    # An entry with a USCC has it as its match key: only entries not stored under their key
    # can need one. Storing an unchanged roster again, there are none.
    if not known or known.keys() >= roster_keys:
        return []
    by_uscc = {row[_USCC]: key for key, row in known.items() if row[_USCC] and row[_USCC] != key}
    by_name_only = {key for key, row in known.items() if row[_USCC] is None}
    pairs: list[tuple[str, str]] = []
    claimed: set[str] = set()
    for entry in entries:
        if not entry.uscc or entry.uscc in known:
            continue
        old = by_uscc.get(entry.uscc)
        if old is None and by_name_only:
            name_key = match_key(entry.name)
            old = name_key if name_key in by_name_only else None
        if old is not None and old not in roster_keys and old not in claimed:
            claimed.add(old)
            pairs.append((old, entry.uscc))
    return pairs


def _rekey(
    conn: Connection,
    known: Known,
    entries: Sequence[RosterEntry],
    roster_keys: set[str],
    now: dt.datetime,
) -> int:
    pairs = _rekey_pairs(known, entries, roster_keys)
    if pairs:
        statement = (
            sa.update(COMPANIES)
            .where(COMPANIES.c.match_key == sa.bindparam("old_key"))
            .values(
                match_key=sa.bindparam("new_key"), shard=sa.bindparam("new_shard"), updated_at=now
            )
        )
        conn.execute(
            statement,
            [{"old_key": old, "new_key": new, "new_shard": shard_of(new)} for old, new in pairs],
        )
    for old, new in pairs:
        known[new] = known.pop(old)
    return len(pairs)


# --- companies ----------------------------------------------------------------------------


@dataclass
class _Plan:
    writes: list[RosterEntry]
    inserted: int
    reactivated: int
    shards_touched: set[int]


def _plan(known: Known, entries: Sequence[RosterEntry]) -> _Plan:
    """Which entries need a write: new ones, inactive ones, and those whose fields changed."""
    plan = _Plan([], 0, 0, set())
    # One pass over every entry on every run: the comparison is written out, not a function
    # call per entry (which doubled the time to store an unchanged roster).
    for entry in entries:
        stored = known.get(entry.match_key)
        if stored is None:
            plan.inserted += 1
            plan.shards_touched.add(entry.shard)
        elif not stored[_ACTIVE]:
            plan.reactivated += 1
            plan.shards_touched.add(entry.shard)
        elif (
            stored[_NAME] == entry.name
            and stored[_QUERY] == entry.query
            and stored[_SOURCE] == entry.source
            # The roster only adds identifiers: a blank cell is no change.
            and (entry.uscc is None or entry.uscc == stored[_USCC])
            and (entry.reg_no is None or entry.reg_no == stored[_REG_NO])
        ):
            continue
        plan.writes.append(entry)
    return plan


def _insert_for(conn: Connection) -> Any:
    """The dialect's INSERT, which knows ON CONFLICT."""
    dialects = {"sqlite": sqlite.insert, "postgresql": postgresql.insert}
    try:
        return dialects[conn.dialect.name]
    except KeyError:
        raise NotImplementedError(
            f"roster storage supports SQLite and PostgreSQL, not {conn.dialect.name}"
        ) from None


def _chunks(conn: Connection, rows: Sequence[Any], columns: int) -> Iterator[Sequence[Any]]:
    limit = MAX_PARAMETERS.get(conn.dialect.name, 32766)
    size = max(1, min(CHUNK_ROWS, limit // max(columns, 1)))
    for start in range(0, len(rows), size):
        yield rows[start : start + size]


# The roster's companies on their way into `companies`: a temporary table of this connection,
# filled by the driver's bulk path. `position` keeps roster order (new companies' ids follow
# it); `pass_` numbers repeats of one match key, written one pass after another (see below).
ENTRY_COLUMNS = ("name", "uscc", "reg_no", "match_key", "query", "shard", "roster_source")
_STAGING = sa.Table(
    "zizhi_roster_staging",
    sa.MetaData(),
    sa.Column("position", sa.Integer),
    sa.Column("pass_", sa.Integer),
    *(sa.Column(name, COMPANIES.c[name].type) for name in ENTRY_COLUMNS),
    prefixes=["TEMPORARY"],
)


def _entry_rows(entries: Sequence[RosterEntry]) -> tuple[list[tuple[Any, ...]], int]:
    """The staging rows of `entries` and how many passes they need.

    Two entries may share a match key (a USCC typed as one row's name and given as another
    row's 统一社会信用代码). Row by row, the later one updated the company the first one
    wrote; one INSERT ... ON CONFLICT cannot touch a row twice on PostgreSQL, so each repeat
    of a key goes into the next pass, and the passes run in order.
    """
    keys = [entry.match_key for entry in entries]
    if len(set(keys)) == len(keys):
        passes = [0] * len(keys)
    else:
        seen: dict[str, int] = {}
        passes = []
        for key in keys:
            seen[key] = seen.get(key, -1) + 1
            passes.append(seen[key])
    rows = [
        (position, pass_, e.name, e.uscc, e.reg_no, e.match_key, e.query, e.shard, e.source)
        for position, (pass_, e) in enumerate(zip(passes, entries, strict=True))
    ]
    return rows, max(passes, default=-1) + 1


def _stage(conn: Connection, rows: list[tuple[Any, ...]]) -> None:
    """Fill the staging table: COPY on PostgreSQL, executemany on SQLite."""
    cursor = conn.connection.cursor()
    try:
        if conn.dialect.name == "postgresql":
            columns = ", ".join(column.name for column in _STAGING.c)
            with cursor.copy(f"COPY {_STAGING.name} ({columns}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
        else:
            marks = ", ".join("?" for _ in _STAGING.c)
            cursor.executemany(f"INSERT INTO {_STAGING.name} VALUES ({marks})", rows)
    finally:
        cursor.close()


def _upsert_companies(conn: Connection, entries: list[RosterEntry], now: dt.datetime) -> None:
    """Stage the entries, then one INSERT ... SELECT ... ON CONFLICT DO UPDATE (per pass)."""
    if not entries:
        return
    rows, passes = _entry_rows(entries)
    if conn.dialect.name == "sqlite":
        # SQLite creates the table outside the transaction when it is the store's first write,
        # so a store that failed may have left it on this connection. (PostgreSQL's DDL is
        # transactional: a failed store's rollback took it away.)
        conn.exec_driver_sql(f"DROP TABLE IF EXISTS temp.{_STAGING.name}")
    _STAGING.create(conn)
    _stage(conn, rows)
    staged = _STAGING.c
    stamp = sa.bindparam("now", now, type_=COMPANIES.c.updated_at.type)
    columns = [*ENTRY_COLUMNS, "active", "fetch_status", "created_at", "updated_at"]
    for pass_ in range(passes):
        select = (
            sa.select(
                *(staged[name] for name in ENTRY_COLUMNS),
                sa.true(),
                sa.literal("pending"),
                stamp,
                stamp,
            )
            # WHERE keeps SQLite from reading ON CONFLICT as a join constraint.
            .where(staged.pass_ == pass_)
            .order_by(staged.position)
        )
        statement = _insert_for(conn)(COMPANIES).from_select(columns, select)
        new = statement.excluded
        conn.execute(
            statement.on_conflict_do_update(
                index_elements=[COMPANIES.c.match_key],
                set_={
                    "name": new.name,
                    # The roster only adds identifiers: a blank cell never erases a known one.
                    "uscc": sa.func.coalesce(new.uscc, COMPANIES.c.uscc),
                    "reg_no": sa.func.coalesce(new.reg_no, COMPANIES.c.reg_no),
                    "query": new.query,
                    "shard": new.shard,
                    "roster_source": new.roster_source,
                    "active": sa.true(),
                    "updated_at": stamp,
                },
            )
        )
    _STAGING.drop(conn)


def _deactivate(
    conn: Connection,
    known: Known,
    result: RosterResult,
    listed: set[str],
    plan: _Plan,
    now: dt.datetime,
) -> tuple[int, str]:
    """Deactivate active companies the roster no longer lists (`listed`: the entries' match
    keys), if the roster can say so."""
    if not result.complete:
        return 0, "roster not read completely: no company was deactivated"
    if not result.entries:
        return 0, "roster has no usable company: no company was deactivated"
    if not plan.inserted and len(listed) == len(known):
        dropped = []  # every listed company is stored, and there are no others
    else:
        dropped = [key for key in known if key not in listed and known[key][_ACTIVE]]
    count = 0
    for chunk in _chunks(conn, dropped, 1):
        count += conn.execute(
            sa.update(COMPANIES)
            .where(COMPANIES.c.match_key.in_(chunk), COMPANIES.c.active.is_(True))
            .values(active=False, updated_at=now)
        ).rowcount
    return count, f"{count} companies no longer on the roster were deactivated"


# --- rejects ------------------------------------------------------------------------------


def reject_fingerprint(reject: RosterReject) -> str:
    """sha256 of (source, row_number, raw_row, reason) in canonical JSON."""
    canonical = json.dumps(
        [reject.source, reject.row_number, reject.raw_row, reject.reason],
        ensure_ascii=False,
        sort_keys=True,
        separators=(",", ":"),
    )
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def _no_nul(text: str) -> str:
    return text.replace("\x00", "")  # PostgreSQL text and JSONB cannot hold NUL


def _reject_row(reject: RosterReject, fingerprint: str, now: dt.datetime) -> dict[str, Any]:
    raw = (
        None
        if reject.raw_row is None
        else {_no_nul(k): _no_nul(v) for k, v in reject.raw_row.items()}
    )
    return {
        "source": _no_nul(reject.source),
        "row_number": reject.row_number,
        "raw_row": raw,
        "reason": _no_nul(reject.reason),
        "fingerprint": fingerprint,
        "detected_at": now,
    }


def _insert_rejects(conn: Connection, rejects: Sequence[RosterReject], now: dt.datetime) -> int:
    """Insert rejects not stored yet (by fingerprint); returns how many were new."""
    unique = {reject_fingerprint(reject): reject for reject in rejects}
    fingerprint = REJECTS.c.fingerprint
    for chunk in _chunks(conn, list(unique), 1):
        for stored in conn.execute(sa.select(fingerprint).where(fingerprint.in_(chunk))).scalars():
            unique.pop(stored, None)
    rows = [_reject_row(reject, key, now) for key, reject in unique.items()]
    if rows:
        statement = _insert_for(conn)(REJECTS).on_conflict_do_nothing(index_elements=[fingerprint])
        for chunk in _chunks(conn, rows, len(rows[0])):
            conn.execute(statement, list(chunk))
    return len(rows)
