"""Write a validated roster into `companies` and `roster_rejects`, set-based, in one transaction.

- New companies are inserted `pending` and active; known ones get the roster's name, identifiers,
  query, shard and source (fetch state is never touched); unchanged ones are not written at all,
  so storing the same roster twice changes nothing.
- A company known by its name whose row now carries a 统一社会信用代码 is re-keyed to it (its
  history stays with it) instead of being replaced by a new company.
- Only a roster read completely deactivates the companies it no longer lists (history kept).
- Rejects are keyed by a fingerprint, so re-reading an unchanged roster adds no reject rows.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

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


class _Known(NamedTuple):
    """A company already stored, reduced to what decides whether the roster changes it."""

    digest: int
    uscc: str | None
    reg_no: str | None
    active: bool


def store_roster(engine: Engine, result: RosterResult, *, now: dt.datetime) -> RosterStoreReport:
    """Upsert companies, deactivate dropped ones (complete roster only), add the rejects."""
    with engine.begin() as conn:
        known = _known_companies(conn)
        rekeyed = _rekey(conn, known, result.entries, now)
        plan = _plan(known, result.entries)
        _upsert_companies(conn, plan.writes, now)
        deactivated, note = _deactivate(conn, known, result, now)
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


# --- reading what is there ----------------------------------------------------------------


def _digest(name: str, query: str, roster_source: str | None) -> int:
    # Compared within one process only, so the built-in hash is enough.
    return hash((name, query, roster_source))


def _known_companies(conn: Connection) -> dict[str, _Known]:
    c = COMPANIES.c
    rows = conn.execute(
        sa.select(c.match_key, c.name, c.query, c.roster_source, c.uscc, c.reg_no, c.active)
    )
    return {
        key: _Known(_digest(name, query, source), uscc, reg_no, bool(active))
        for key, name, query, source, uscc, reg_no, active in rows
    }


# --- re-keying companies that gained a 统一社会信用代码 -----------------------------------


def _rekey_pairs(known: dict[str, _Known], entries: Sequence[RosterEntry]) -> list[tuple[str, str]]:
    """(old key, USCC) for companies stored under another key that the roster now gives a USCC.

    Either the stored row already has that USCC under another key, or it was stored by name
    without any USCC and the roster row has the same name and now a USCC.
    """
    by_uscc = {k.uscc: key for key, k in known.items() if k.uscc and k.uscc != key}
    by_name_only = {key for key, k in known.items() if k.uscc is None}
    roster_keys = {e.match_key for e in entries}
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
    conn: Connection, known: dict[str, _Known], entries: Sequence[RosterEntry], now: dt.datetime
) -> int:
    pairs = _rekey_pairs(known, entries)
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


def _plan(known: dict[str, _Known], entries: Sequence[RosterEntry]) -> _Plan:
    """Which entries need a write: new ones, inactive ones, and those whose fields changed."""
    plan = _Plan([], 0, 0, set())
    for entry in entries:
        stored = known.get(entry.match_key)
        if stored is None:
            plan.inserted += 1
            plan.shards_touched.add(entry.shard)
        elif not stored.active:
            plan.reactivated += 1
            plan.shards_touched.add(entry.shard)
        elif not _changed(stored, entry):
            continue
        plan.writes.append(entry)
    return plan


def _changed(stored: _Known, entry: RosterEntry) -> bool:
    return (
        stored.digest != _digest(entry.name, entry.query, entry.source)
        or (entry.uscc is not None and entry.uscc != stored.uscc)
        or (entry.reg_no is not None and entry.reg_no != stored.reg_no)
    )


COMPANY_ROW_COLUMNS = ("name", "uscc", "reg_no", "match_key", "query", "shard", "roster_source")


def _company_row(entry: RosterEntry) -> dict[str, Any]:
    return {
        "name": entry.name,
        "uscc": entry.uscc,
        "reg_no": entry.reg_no,
        "match_key": entry.match_key,
        "query": entry.query,
        "shard": entry.shard,
        "roster_source": entry.source,
    }


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


def _upsert_companies(conn: Connection, entries: list[RosterEntry], now: dt.datetime) -> None:
    """One upsert statement run over chunks of rows.

    SQLAlchemy sends each chunk as multi-row VALUES pages ("insertmanyvalues") on PostgreSQL
    and through the driver's executemany on SQLite, compiling the statement once.
    """
    if not entries:
        return
    statement = _insert_for(conn)(COMPANIES).values(
        active=True, fetch_status="pending", created_at=now, updated_at=now
    )
    new = statement.excluded
    upsert = statement.on_conflict_do_update(
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
            "updated_at": now,
        },
    )
    for chunk in _chunks(conn, entries, len(COMPANY_ROW_COLUMNS) + 4):
        conn.execute(upsert, [_company_row(entry) for entry in chunk])


def _deactivate(
    conn: Connection, known: dict[str, _Known], result: RosterResult, now: dt.datetime
) -> tuple[int, str]:
    """Deactivate active companies the roster no longer lists, if the roster can say so."""
    if not result.complete:
        return 0, "roster not read completely: no company was deactivated"
    if not result.entries:
        return 0, "roster has no usable company: no company was deactivated"
    listed = {entry.match_key for entry in result.entries}
    dropped = [key for key, stored in known.items() if stored.active and key not in listed]
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


def _reject_row(reject: RosterReject, now: dt.datetime) -> dict[str, Any]:
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
        "fingerprint": reject_fingerprint(reject),
        "detected_at": now,
    }


def _insert_rejects(conn: Connection, rejects: Sequence[RosterReject], now: dt.datetime) -> int:
    """Insert rejects not stored yet (by fingerprint); returns how many were new."""
    unique = {row["fingerprint"]: row for row in (_reject_row(r, now) for r in rejects)}
    fingerprint = REJECTS.c.fingerprint
    for chunk in _chunks(conn, list(unique), 1):
        for stored in conn.execute(sa.select(fingerprint).where(fingerprint.in_(chunk))).scalars():
            unique.pop(stored, None)
    rows = list(unique.values())
    if rows:
        statement = _insert_for(conn)(REJECTS).on_conflict_do_nothing(index_elements=[fingerprint])
        for chunk in _chunks(conn, rows, len(rows[0])):
            conn.execute(statement, list(chunk))
    return len(rows)
