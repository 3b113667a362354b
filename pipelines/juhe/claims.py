"""One purchase per company and one daily budget, across every run sharing the database.

Backfills and the nightly can overlap on the same shards. Two rules keep them from paying twice:

* **Claims.** Before its first request for a company, a run claims it (`fetch_claims`, one row
  per company) with a lease. A claim held by another run whose lease has not expired means
  "someone is fetching it": skip. Having claimed it, the run still skips a company attempted
  since the run found it due (another run finished it meanwhile). A run releases its claims when its
  fetch ends; a run that dies leaves claims that expire after `lease`.
* **Budget.** With `JUHE_DAILY_BUDGET` set, every HTTP attempt first reserves one unit of the
  Asia/Shanghai day in `api_budget_days` with one conditional UPDATE; when none is left the run
  stops calling. The counter starts, on a day's first reservation, at the ledger's count of that
  day's attempts (calls made before this table existed, or by a process without it).
"""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Engine

from models import ApiBudgetDay, ApiCall, Company, FetchClaim

CHINA = ZoneInfo("Asia/Shanghai")
DEFAULT_LEASE = dt.timedelta(minutes=15)


def _upsert(engine: Engine):  # type: ignore[no-untyped-def]
    return postgresql.insert if engine.dialect.name == "postgresql" else sqlite.insert


def claim(
    engine: Engine,
    company_id: int,
    run_id: str,
    *,
    since: dt.datetime,
    now: dt.datetime,
    lease: dt.timedelta = DEFAULT_LEASE,
) -> bool:
    """Claim `company_id` for `run_id`; False when another run holds it, or the company was
    attempted at or after `since` (when this run read its due list)."""
    insert = _upsert(engine)(FetchClaim).values(
        company_id=company_id, run_id=run_id, expires_at=now + lease
    )
    upsert = insert.on_conflict_do_update(
        index_elements=[FetchClaim.company_id],
        set_={"run_id": insert.excluded.run_id, "expires_at": insert.excluded.expires_at},
        where=sa.or_(FetchClaim.expires_at < now, FetchClaim.run_id == run_id),
    ).returning(FetchClaim.company_id)
    attempted = sa.select(Company.last_attempt_at).where(Company.id == company_id)
    with engine.connect() as conn, conn.begin() as transaction:
        if conn.execute(upsert).first() is None:  # held by another run
            return False
        last_attempt = conn.execute(attempted).scalar_one_or_none()
        if last_attempt is not None and last_attempt >= since:
            transaction.rollback()  # another run finished it meanwhile: leave no claim
            return False
    return True


def release(engine: Engine, run_id: str) -> None:
    """Drop every claim of `run_id` (its fetch has ended)."""
    with engine.begin() as conn:
        conn.execute(sa.delete(FetchClaim).where(FetchClaim.run_id == run_id))


def china_day(now: dt.datetime) -> dt.date:
    return now.astimezone(CHINA).date()


def start_of_china_day(now: dt.datetime) -> dt.datetime:
    """Midnight of `now`'s day in Asia/Shanghai, as an aware datetime."""
    return now.astimezone(CHINA).replace(hour=0, minute=0, second=0, microsecond=0)


def return_call(engine: Engine, reserved_at: dt.datetime) -> None:
    """Give back a unit reserved at `reserved_at` whose request was never sent."""
    with engine.begin() as conn:
        conn.execute(
            sa.update(ApiBudgetDay)
            .where(ApiBudgetDay.day == china_day(reserved_at), ApiBudgetDay.calls > 0)
            .values(calls=ApiBudgetDay.calls - 1)
        )


def reserve_call(engine: Engine, budget: int, now: dt.datetime) -> bool:
    """Reserve one HTTP attempt of `now`'s day; False when the day's `budget` is used up."""
    day = china_day(now)
    take = (
        sa.update(ApiBudgetDay)
        .where(ApiBudgetDay.day == day, ApiBudgetDay.calls < budget)
        .values(calls=ApiBudgetDay.calls + 1)
        .returning(ApiBudgetDay.calls)
    )
    with engine.begin() as conn:
        if conn.execute(take).first() is not None:
            return True
        if conn.execute(sa.select(ApiBudgetDay.day).where(ApiBudgetDay.day == day)).first():
            return False  # the day's row exists: its budget is used up
        # The day's first reservation: the counter starts at the ledger's attempts of the day.
        already = (
            sa.select(sa.func.count())
            .select_from(ApiCall)
            .where(ApiCall.called_at >= start_of_china_day(now))
            .scalar_subquery()
        )
        first = _upsert(engine)(ApiBudgetDay).from_select(
            ["day", "calls"], sa.select(sa.literal(day, sa.Date), already)
        )
        conn.execute(first.on_conflict_do_nothing(index_elements=[ApiBudgetDay.day]))
        return conn.execute(take).first() is not None
