"""The short summary `make demo` prints: what landed, and the licences expiring soonest."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.orm import InstrumentedAttribute

from models import ApiCall, Company, License, LicenseChange, LicenseName, RawResponse, RosterReject
from pipelines.analytics.report import soonest_expiring
from pipelines.metadata import row_count
from pipelines.settings import data_dir

SHANGHAI = ZoneInfo("Asia/Shanghai")


def _counts_by(conn: sa.Connection, column: InstrumentedAttribute[str]) -> dict[str, int]:
    query = sa.select(column, sa.func.count()).group_by(column)
    return {value: count for value, count in conn.execute(query)}


def print_summary(engine: Engine) -> None:
    today = dt.datetime.now(SHANGHAI).date()
    counts = {
        table.__tablename__: row_count(engine, table.__tablename__)
        for table in (
            Company,
            License,
            LicenseName,
            LicenseChange,
            RawResponse,
            ApiCall,
            RosterReject,
        )
    }
    with engine.connect() as conn:
        statuses = _counts_by(conn, Company.fetch_status)
        changes = _counts_by(conn, LicenseChange.change_type)
    print("\nzizhi — what landed")
    width = max(len(name) for name in counts)
    for name, count in counts.items():
        print(f"  {name:<{width}}  {count:>8,}")
    print(
        "  companies by fetch status: " + ", ".join(f"{k} {v}" for k, v in sorted(statuses.items()))
    )
    print(
        "  changes by type: "
        + (", ".join(f"{k} {v}" for k, v in sorted(changes.items())) or "none")
    )
    print("\nFive licences expiring soonest")
    with engine.connect() as conn:
        soonest = soonest_expiring(conn, today, limit=5)
    for end, name, category, lic_no, _names in soonest:
        print(f"  {end:%Y-%m-%d}  {name}  {category}  {lic_no}")
    reports = data_dir() / "reports"
    if reports.exists():
        print(f"\nCharts: {', '.join(str(p) for p in sorted(reports.glob('*.png')))}")
