"""Which companies a run fetches (docs/architecture.md#due-policy).

An active company is due when it was never fetched, its last success (ok/not_found) is older than
the refresh interval, its last run failed and the failure backoff has passed (1 h × 2^(n-1) for n
consecutive failed runs, capped at the refresh interval), or its query was refused as invalid more
than a refresh interval ago. `force` makes every active company due. A company a quota,
maintenance or throttle answer stopped keeps its state, so it stays due without any backoff.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.orm import InstrumentedAttribute

from models.base import UtcDateTime
from models.tables import Company

FIRST_BACKOFF = dt.timedelta(hours=1)


@dataclass(frozen=True)
class DueCompany:
    id: int
    name: str
    query: str
    shard: int


def failure_backoff(consecutive_failures: int, refresh_interval: dt.timedelta) -> dt.timedelta:
    """1 h × 2^(n-1), capped at the refresh interval."""
    exponent = max(consecutive_failures, 1) - 1
    return min(FIRST_BACKOFF * 2**exponent, refresh_interval)


def _at(value: dt.datetime) -> sa.BindParameter[dt.datetime]:
    return sa.bindparam(None, value, type_=UtcDateTime())


def _failed_retry_before(now: dt.datetime, refresh_interval: dt.timedelta) -> sa.ColumnElement:
    """Per row: the latest last_attempt_at whose backoff has passed (a CASE over failure counts)."""
    whens = []
    failures = 1
    while FIRST_BACKOFF * 2 ** (failures - 1) < refresh_interval:
        whens.append(
            (
                Company.consecutive_failures <= failures,
                _at(now - failure_backoff(failures, refresh_interval)),
            )
        )
        failures += 1
    if not whens:
        return _at(now - refresh_interval)
    return sa.case(*whens, else_=_at(now - refresh_interval))


def _older_than(
    column: InstrumentedAttribute[dt.datetime | None], bound: sa.ColumnElement
) -> sa.ColumnElement[bool]:
    return sa.or_(column.is_(None), column <= bound)


def due_condition(
    now: dt.datetime, refresh_interval: dt.timedelta, force: bool = False
) -> sa.ColumnElement[bool]:
    """The WHERE clause of the due policy (active companies only)."""
    if force:
        return Company.active.is_(True)
    stale = _at(now - refresh_interval)
    return sa.and_(
        Company.active.is_(True),
        sa.or_(
            Company.fetch_status == "pending",
            sa.and_(
                Company.fetch_status.in_(("ok", "not_found")),
                _older_than(Company.last_fetched_at, stale),
            ),
            sa.and_(Company.fetch_status == "invalid", _older_than(Company.last_attempt_at, stale)),
            sa.and_(
                Company.fetch_status == "failed",
                _older_than(Company.last_attempt_at, _failed_retry_before(now, refresh_interval)),
            ),
        ),
    )


def _where(
    shards: Sequence[int] | None, now: dt.datetime, refresh_interval: dt.timedelta, force: bool
) -> sa.ColumnElement[bool]:
    condition = due_condition(now, refresh_interval, force)
    if shards is not None:
        condition = sa.and_(condition, Company.shard.in_(list(shards)))
    return condition


def select_due(
    engine: Engine,
    *,
    shards: Sequence[int] | None,
    now: dt.datetime,
    refresh_interval: dt.timedelta,
    force: bool = False,
    limit: int | None = None,
) -> list[DueCompany]:
    """The due companies of `shards` (all shards when None), ordered by id."""
    query = (
        sa.select(Company.id, Company.name, Company.query, Company.shard)
        .where(_where(shards, now, refresh_interval, force))
        .order_by(Company.id)
        .limit(limit)
    )
    with engine.connect() as conn:
        return [DueCompany(*row) for row in conn.execute(query)]


def count_due(
    engine: Engine,
    *,
    shards: Sequence[int] | None,
    now: dt.datetime,
    refresh_interval: dt.timedelta,
    force: bool = False,
) -> int:
    """How many companies of `shards` are due at `now`."""
    query = (
        sa.select(sa.func.count())
        .select_from(Company)
        .where(_where(shards, now, refresh_interval, force))
    )
    with engine.connect() as conn:
        return int(conn.execute(query).scalar_one())
