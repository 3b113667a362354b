"""Typed handles on the analytics views and the example queries, for Python callers.

The views are created by migration 0002 and their SQL lives there, frozen in time. The Table
objects below only describe the views' columns so that Core queries return the same Python
types on SQLite and PostgreSQL (dates as `date`, timestamps timezone-aware, flags as `bool`).
They live in their own MetaData, never in `models.Base.metadata`: Alembic must not create them.
"""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.types import TypeEngine

from models.base import UtcDateTime

VIEWS_METADATA = sa.MetaData()
QUERIES_DIR = Path(__file__).parent / "queries"

current_licenses = sa.Table(
    "current_licenses",
    VIEWS_METADATA,
    sa.Column("license_id", sa.Integer),
    sa.Column("company_id", sa.Integer),
    sa.Column("company_name", sa.Text),
    sa.Column("uscc", sa.Text),
    sa.Column("category", sa.Text),
    sa.Column("lic_no", sa.Text),
    sa.Column("names", sa.Text),
    sa.Column("grades", sa.Text),
    sa.Column("issue_org", sa.Text),
    sa.Column("validity_start", sa.Date),
    sa.Column("validity_end", sa.Date),
    sa.Column("validity_open_ended", sa.Boolean),
    sa.Column("days_to_expiry", sa.Integer),
)

expiring_licenses = sa.Table(
    "expiring_licenses",
    VIEWS_METADATA,
    *(sa.Column(column.name, column.type) for column in current_licenses.columns),
)

license_change_log = sa.Table(
    "license_change_log",
    VIEWS_METADATA,
    sa.Column("change_id", sa.Integer),
    sa.Column("detected_at", UtcDateTime()),
    sa.Column("company_id", sa.Integer),
    sa.Column("company_name", sa.Text),
    sa.Column("uscc", sa.Text),
    sa.Column("license_id", sa.Integer),
    sa.Column("category", sa.Text),
    sa.Column("lic_no", sa.Text),
    sa.Column("names", sa.Text),
    sa.Column("change_type", sa.Text),
    sa.Column("changed_fields", sa.Text),
    sa.Column("source_updated_time", UtcDateTime()),
    sa.Column("run_id", sa.Text),
)

company_qualification_summary = sa.Table(
    "company_qualification_summary",
    VIEWS_METADATA,
    sa.Column("company_id", sa.Integer),
    sa.Column("name", sa.Text),
    sa.Column("uscc", sa.Text),
    sa.Column("license_count", sa.Integer),
    sa.Column("category", sa.Text),
    sa.Column("licenses", sa.Integer),
    sa.Column("names", sa.Integer),
    sa.Column("highest_grade", sa.Text),
)

fetch_health = sa.Table(
    "fetch_health",
    VIEWS_METADATA,
    sa.Column("company_id", sa.Integer),
    sa.Column("name", sa.Text),
    sa.Column("uscc", sa.Text),
    sa.Column("active", sa.Boolean),
    sa.Column("fetch_status", sa.Text),
    sa.Column("last_error_code", sa.Integer),
    sa.Column("last_attempt_at", UtcDateTime()),
    sa.Column("last_fetched_at", UtcDateTime()),
    sa.Column("consecutive_failures", sa.Integer),
    sa.Column("calls_total", sa.Integer),
    sa.Column("calls_failed", sa.Integer),
    sa.Column("calls_billable", sa.Integer),
)

# Types of the example queries' named parameters and of the result columns that SQLite would
# otherwise return as text. Timestamps must be bound as aware datetimes.
_PARAM_TYPES: dict[str, TypeEngine[Any]] = {
    "since": UtcDateTime(),
    "start_date": sa.Date(),
    "end_date": sa.Date(),
}
_RESULT_TYPES: dict[str, TypeEngine[Any]] = {
    "detected_at": UtcDateTime(),
    "source_updated_time": UtcDateTime(),
    "validity_start": sa.Date(),
    "validity_end": sa.Date(),
    "validity_open_ended": sa.Boolean(),
}
_BIND_NAME = re.compile(r"(?<![:\w]):(\w+)")


def example_query_names() -> list[str]:
    """The example queries shipped in `queries/`, by file stem."""
    return sorted(path.stem for path in QUERIES_DIR.glob("*.sql"))


@cache
def example_query(name: str) -> sa.TextualSelect:
    """An example query from `queries/<name>.sql`, with typed parameters and result columns.

    Execute it with the named parameters the file declares, e.g.
    `conn.execute(example_query("lost_qualifications"), {"since": aware_datetime})`.
    """
    sql = (QUERIES_DIR / f"{name}.sql").read_text(encoding="utf-8")
    params = [
        sa.bindparam(param, type_=_PARAM_TYPES[param])
        for param in dict.fromkeys(_BIND_NAME.findall(sql))
        if param in _PARAM_TYPES
    ]
    return sa.text(sql).bindparams(*params).columns(**_RESULT_TYPES)
