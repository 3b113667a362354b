"""A report people can look at: expiring licences, this week's changes, two charts.

`build_report(engine, out_dir)` reads the analytics views, writes `report.md` and two PNG charts
into `out_dir` and returns them. Days are Asia/Shanghai calendar days (the source's and the
schedule's zone), counted from `today`, never from the database's CURRENT_DATE, so a report for
a given day is the same on SQLite and PostgreSQL and wherever it runs.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine, Row
from sqlalchemy.sql.elements import ColumnElement

from pipelines.analytics.charts import CHANGE_TYPES, changes_chart, expiries_chart
from pipelines.analytics.views import current_licenses, license_change_log
from pipelines.markdown import markdown_text

SHANGHAI = ZoneInfo("Asia/Shanghai")
SOONEST_LIMIT = 10
RECENT_CHANGES_LIMIT = 20
WEEK_DAYS = 7
CHART_MONTHS = 12
CHART_WEEKS = 12


@dataclass(frozen=True)
class Report:
    """The rendered report and the numbers behind its charts."""

    markdown: str
    markdown_path: Path
    chart_paths: tuple[Path, ...]
    # First day of each of the next 12 months → current licences whose validity ends then.
    expiries_by_month: dict[dt.date, int]
    # Monday of each of the last 12 weeks → change type → changes detected that week.
    changes_by_week: dict[dt.date, dict[str, int]]


def build_report(engine: Engine, out_dir: Path, *, today: dt.date | None = None) -> Report:
    """Query the views, draw the charts and write `report.md`, all under `out_dir`."""
    today = today or dt.datetime.now(SHANGHAI).date()
    week_start = today - dt.timedelta(days=WEEK_DAYS - 1)
    with engine.connect() as conn:
        soonest = soonest_expiring(conn, today)
        recent = _changes_between(conn, week_start, today)
        counts = _change_counts(conn, week_start, today)
        expiries = _expiries_by_month(conn, today)
        weekly = _changes_by_week(conn, today)
    out_dir.mkdir(parents=True, exist_ok=True)
    charts = (
        expiries_chart(expiries, today, out_dir / "expiries_by_month.png"),
        changes_chart(weekly, out_dir / "changes_by_week.png"),
    )
    markdown = render_markdown(today, soonest, recent, counts, charts)
    markdown_path = out_dir / "report.md"
    markdown_path.write_text(markdown, encoding="utf-8")
    return Report(markdown, markdown_path, charts, expiries, weekly)


# --- queries -------------------------------------------------------------------------------


def soonest_expiring(conn: Connection, today: dt.date, limit: int = SOONEST_LIMIT) -> Sequence[Row]:
    """Current licences by validity end from `today`: (end, company, category, lic_no, names)."""
    view = current_licenses
    query = (
        sa.select(
            view.c.validity_end, view.c.company_name, view.c.category, view.c.lic_no, view.c.names
        )
        .where(view.c.validity_end >= today)
        .order_by(view.c.validity_end, view.c.company_id, view.c.license_id)
        .limit(limit)
    )
    return conn.execute(query).all()


def _changes_between(conn: Connection, first: dt.date, last: dt.date) -> Sequence[Row]:
    view = license_change_log
    query = (
        sa.select(
            view.c.detected_at,
            view.c.change_type,
            view.c.company_name,
            view.c.category,
            view.c.lic_no,
            view.c.changed_fields,
        )
        .where(_detected_within(first, last))
        .order_by(view.c.detected_at.desc(), view.c.change_id.desc())
        .limit(RECENT_CHANGES_LIMIT)
    )
    return conn.execute(query).all()


def _change_counts(conn: Connection, first: dt.date, last: dt.date) -> dict[str, int]:
    view = license_change_log
    query = (
        sa.select(view.c.change_type, sa.func.count())
        .where(_detected_within(first, last))
        .group_by(view.c.change_type)
    )
    found = {change_type: count for change_type, count in conn.execute(query).all()}
    return {change_type: found.get(change_type, 0) for change_type in CHANGE_TYPES}


def _expiries_by_month(conn: Connection, today: dt.date) -> dict[dt.date, int]:
    months = [_add_months(today.replace(day=1), n) for n in range(CHART_MONTHS)]
    horizon = _add_months(months[0], CHART_MONTHS)
    view = current_licenses
    query = (
        sa.select(view.c.validity_end, sa.func.count())
        .where(view.c.validity_end >= today, view.c.validity_end < horizon)
        .group_by(view.c.validity_end)
    )
    counts = dict.fromkeys(months, 0)
    for day, count in conn.execute(query).all():
        counts[day.replace(day=1)] += count
    return counts


def _changes_by_week(conn: Connection, today: dt.date) -> dict[dt.date, dict[str, int]]:
    this_monday = today - dt.timedelta(days=today.weekday())
    mondays = [this_monday - dt.timedelta(weeks=n) for n in reversed(range(CHART_WEEKS))]
    view = license_change_log
    day = _shanghai_day(view.c.detected_at, conn.dialect.name)
    query = (
        sa.select(day, view.c.change_type, sa.func.count())
        .where(_detected_within(mondays[0], today))
        .group_by(day, view.c.change_type)
    )
    weeks: dict[dt.date, Counter[str]] = defaultdict(Counter)
    for local_day, change_type, count in conn.execute(query).all():
        weeks[local_day - dt.timedelta(days=local_day.weekday())][change_type] += count
    return {monday: {t: weeks[monday][t] for t in CHANGE_TYPES} for monday in mondays}


def _detected_within(first: dt.date, last: dt.date) -> ColumnElement[bool]:
    """detected_at on the Asia/Shanghai days first..last, both included."""
    start = dt.datetime.combine(first, dt.time(), tzinfo=SHANGHAI)
    end = dt.datetime.combine(last + dt.timedelta(days=1), dt.time(), tzinfo=SHANGHAI)
    detected = license_change_log.c.detected_at
    return sa.and_(detected >= start, detected < end)


def _shanghai_day(timestamp: ColumnElement[dt.datetime], dialect: str) -> ColumnElement[dt.date]:
    """The Asia/Shanghai calendar day of a stored timestamp (UTC text on SQLite).

    Constants are literal so that the same expression in SELECT and GROUP BY compares equal.
    """
    if dialect == "postgresql":
        zone = sa.literal_column("'Asia/Shanghai'", sa.Text)
        return sa.cast(sa.func.timezone(zone, timestamp), sa.Date)
    # China has kept UTC+8 without daylight saving since 1991.
    return sa.type_coerce(sa.func.date(timestamp, sa.literal_column("'+8 hours'")), sa.Date)


def _add_months(first_of_month: dt.date, months: int) -> dt.date:
    index = first_of_month.year * 12 + first_of_month.month - 1 + months
    return dt.date(index // 12, index % 12 + 1, 1)


# --- markdown ------------------------------------------------------------------------------


def render_markdown(
    today: dt.date,
    soonest: Sequence[Row],
    recent: Sequence[Row],
    counts: Mapping[str, int],
    charts: Sequence[Path],
) -> str:
    """The report as markdown; charts are linked by file name, relative to report.md."""
    week_start = today - dt.timedelta(days=WEEK_DAYS - 1)
    lines = [
        f"# zizhi qualification report, {today.isoformat()}",
        "",
        f"## The {SOONEST_LIMIT} licences expiring soonest",
        "",
        *_soonest_table(today, soonest),
        "",
        f"## Changes this week ({week_start.isoformat()} to {today.isoformat()}, Asia/Shanghai)",
        "",
        ", ".join(f"{change_type}: {counts[change_type]}" for change_type in CHANGE_TYPES)
        + f" (total {sum(counts.values())})",
        "",
        *_changes_table(recent, sum(counts.values())),
        "",
        "## Charts",
        "",
        *(f"![{path.stem.replace('_', ' ')}]({path.name})" for path in charts),
        "",
    ]
    return "\n".join(lines)


def _soonest_table(today: dt.date, rows: Sequence[Row]) -> list[str]:
    if not rows:
        return ["No current licence has a validity end on or after today."]
    return _table(
        ("validity end", "days left", "company", "category", "lic_no", "qualifications"),
        (
            (
                r.validity_end.isoformat(),
                str((r.validity_end - today).days),
                r.company_name,
                r.category,
                r.lic_no,
                r.names,
            )
            for r in rows
        ),
    )


def _changes_table(rows: Sequence[Row], total: int) -> list[str]:
    if not rows:
        return ["No changes were detected this week."]
    shown = f"Newest {len(rows)} of {total}:" if total > len(rows) else "All changes:"
    return [
        shown,
        "",
        *_table(
            ("detected at", "change", "company", "category", "lic_no", "changed fields"),
            (
                (
                    r.detected_at.astimezone(SHANGHAI).strftime("%Y-%m-%d %H:%M"),
                    r.change_type,
                    r.company_name,
                    r.category,
                    r.lic_no,
                    r.changed_fields,
                )
                for r in rows
            ),
        ),
    ]


def _table(headers: Sequence[str], rows: Iterable[Sequence[object]]) -> list[str]:
    return [
        _table_row(headers),
        "|" + " --- |" * len(headers),  # markup, not text: never through _cell
        *(_table_row(row) for row in rows),
    ]


def _table_row(cells: Iterable[object]) -> str:
    return "| " + " | ".join(_cell(cell) for cell in cells) + " |"


def _cell(value: object) -> str:
    """A markdown table cell, escaped at output by `markdown_text` (company names come from the
    roster, licence fields from the API: either may be hostile); blanks shown as a dash."""
    if value is None or value == "":
        return "–"
    return markdown_text(value)
