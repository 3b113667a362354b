"""build_report writes markdown and PNG charts a person can read, on both backends."""

from __future__ import annotations

import datetime as dt
import itertools
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from markdown_it import MarkdownIt
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.image import imread
from sqlalchemy.engine import Engine

from models import Company, License, LicenseChange, LicenseName
from pipelines.analytics.report import Report, build_report
from tests.analytics.conftest import change, company, insert, license_, names

TODAY = dt.date(2026, 11, 28)  # a Saturday; this week is 2026-11-22 .. 2026-11-28
UTC = dt.UTC


def utc(day: int, hour: int, minute: int = 0, month: int = 11) -> dt.datetime:
    return dt.datetime(2026, month, day, hour, minute, tzinfo=UTC)


@contextmanager
def no_missing_glyphs() -> Iterator[None]:
    """Fail when matplotlib reports a glyph missing from the font while drawing."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield
    missing = [str(w.message) for w in caught if "missing from font" in str(w.message)]
    assert not missing, missing


def load_report_data(engine: Engine) -> None:
    days_left = [0, 1, 2, 3, 5, 8, 13, 21, 34, 55, 89, 144, 400]
    with engine.begin() as conn:
        insert(
            conn,
            Company.__table__,
            [company(1, "中建三局集团有限公司"), company(2, "甲|乙建设有限公司")],
        )
        insert(
            conn,
            License.__table__,
            [
                *(
                    license_(
                        i + 1,
                        1 + i % 2,
                        "建筑业企业资质",
                        f"D{i + 1:03d}",
                        validity_end=TODAY + dt.timedelta(days=days),
                    )
                    for i, days in enumerate(days_left)
                ),
                license_(
                    20, 1, "建筑业企业资质", "EXPIRED", validity_end=TODAY - dt.timedelta(days=1)
                ),
                license_(
                    21, 1, "建筑业企业资质", "GONE", validity_end=TODAY, removed_at=utc(20, 0)
                ),
                license_(22, 2, "工程设计资质", "OPEN", validity_open_ended=True),
            ],
        )
        insert(
            conn,
            LicenseName.__table__,
            [
                *names(
                    1,
                    (1, "市政公用工程施工总承包一级", "一级"),
                    (0, "建筑工程施工总承包特级", "特级"),
                ),
            ],
        )
        insert(
            conn,
            LicenseChange.__table__,
            [
                # 21 changes this week, hourly from 2026-11-27 00:00 UTC back.
                *(
                    change(
                        i,
                        1 + i % 13,
                        1 + (i % 13) % 2,
                        "added" if i % 3 else "updated",
                        utc(27, 0) - dt.timedelta(hours=i),
                        ["validity_end"] if i % 3 == 0 else None,
                    )
                    for i in range(1, 22)
                ),
                # 2026-11-22 00:30 in Shanghai: this week, in the chart's week of Monday 11-16.
                change(30, 21, 1, "removed", utc(21, 16, 30)),
                # 2026-11-21 23:30 in Shanghai: last week.
                change(31, 22, 2, "restored", utc(21, 15, 30)),
                # Thirteen weeks ago: outside the chart.
                change(32, 22, 2, "added", utc(29, 0, month=8)),
            ],
        )


def build(engine: Engine, tmp_path: Path) -> Report:
    return build_report(engine, tmp_path / "report", today=TODAY)


def test_report_lists_the_ten_licences_expiring_soonest(engine: Engine, tmp_path: Path) -> None:
    load_report_data(engine)
    report = build(engine, tmp_path)

    section = report.markdown.split("## The 10 licences expiring soonest")[1].split("##")[0]
    rows = [line for line in section.splitlines() if line.startswith("| 20")]
    assert [row.split(" | ")[4] for row in rows] == [f"D{i:03d}" for i in range(1, 11)]
    assert rows[0] == (
        "| 2026-11-28 | 0 | 中建三局集团有限公司 | 建筑业企业资质 | D001 | "
        "建筑工程施工总承包特级、市政公用工程施工总承包一级 |"
    )
    assert "| 甲\\|乙建设有限公司 |" in rows[1]  # a pipe in a name does not break the table
    assert "EXPIRED" not in report.markdown and "GONE" not in report.markdown


def test_report_shows_this_weeks_changes_newest_first_with_counts(
    engine: Engine, tmp_path: Path
) -> None:
    load_report_data(engine)
    report = build(engine, tmp_path)

    section = report.markdown.split("## Changes this week")[1].split("## Charts")[0]
    assert "(2026-11-22 to 2026-11-28, Asia/Shanghai)" in section
    assert "added: 14, updated: 7, removed: 1, restored: 0 (total 22)" in section
    assert "Newest 20 of 22:" in section
    rows = [line for line in section.splitlines() if line.startswith("| 2026")]
    assert len(rows) == 20
    company = "甲\\|乙建设有限公司"
    assert rows[0] == f"| 2026-11-27 07:00 | added | {company} | 建筑业企业资质 | D002 | – |"
    assert rows[2] == (
        f"| 2026-11-27 05:00 | updated | {company} | 建筑业企业资质 | D004 | validity\\_end |"
    )


def test_chart_numbers_follow_shanghai_weeks_and_calendar_months(
    engine: Engine, tmp_path: Path
) -> None:
    load_report_data(engine)
    report = build(engine, tmp_path)

    assert list(report.expiries_by_month) == [
        dt.date(2026 + (10 + n) // 12, (10 + n) % 12 + 1, 1) for n in range(12)
    ]
    # 0..2 days → November; 3..21 → December; 34, 55 → January; 89 → February; 144 → April.
    assert [
        report.expiries_by_month[dt.date(2026, 11, 1)],
        report.expiries_by_month[dt.date(2026, 12, 1)],
        report.expiries_by_month[dt.date(2027, 1, 1)],
        report.expiries_by_month[dt.date(2027, 2, 1)],
        report.expiries_by_month[dt.date(2027, 4, 1)],
    ] == [3, 5, 2, 1, 1]
    assert sum(report.expiries_by_month.values()) == 12  # 400 days is beyond the horizon

    weeks = report.changes_by_week
    assert min(weeks) == dt.date(2026, 9, 7) and max(weeks) == dt.date(2026, 11, 23)
    assert len(weeks) == 12
    assert weeks[dt.date(2026, 11, 23)] == {"added": 14, "updated": 7, "removed": 0, "restored": 0}
    assert weeks[dt.date(2026, 11, 16)] == {"added": 0, "updated": 0, "removed": 1, "restored": 1}
    assert sum(sum(week.values()) for week in weeks.values()) == 23


def test_report_writes_markdown_and_readable_pngs_without_missing_glyphs(
    engine: Engine, tmp_path: Path
) -> None:
    load_report_data(engine)
    with no_missing_glyphs():
        report = build(engine, tmp_path)

    assert report.markdown_path.read_text(encoding="utf-8") == report.markdown
    assert [p.name for p in report.chart_paths] == ["expiries_by_month.png", "changes_by_week.png"]
    for path in report.chart_paths:
        assert f"]({path.name})" in report.markdown
        image = imread(path)
        assert image.shape[0] > 300 and image.shape[1] > 600
        assert image.std() > 0.05  # not a blank canvas


def test_report_on_an_empty_database(engine: Engine, tmp_path: Path) -> None:
    with no_missing_glyphs():
        report = build(engine, tmp_path)

    assert "No current licence has a validity end on or after today." in report.markdown
    assert "added: 0, updated: 0, removed: 0, restored: 0 (total 0)" in report.markdown
    assert "No changes were detected this week." in report.markdown
    assert set(report.expiries_by_month.values()) == {0}
    assert all(set(week.values()) == {0} for week in report.changes_by_week.values())
    assert all(path.stat().st_size > 0 for path in report.chart_paths)


def test_the_glyph_guard_catches_text_the_font_cannot_draw(tmp_path: Path) -> None:
    """The guard above is not vacuous: Chinese text drawn in DejaVu Sans is reported."""
    figure = Figure()
    FigureCanvasAgg(figure)
    figure.subplots().set_title("资质到期")
    with pytest.raises(AssertionError, match="missing from font"), no_missing_glyphs():
        figure.savefig(tmp_path / "cjk.png")


# --- escaping: names come from the roster and licence fields from the API ---------------------

HOSTILE_NAMES = [
    '=HYPERLINK("http://evil.example","查看")',
    "+86 建设有限公司",
    "-1+2 建设有限公司",
    "@SUM(A1:A9) 建设有限公司",
    "[点击领取](http://evil.example) 建设有限公司",
    "![跟踪](http://evil.example/t.png)",
    "<img src=x onerror=alert(1)>建设有限公司",
    "**粗体** _斜体_ `代码` ~~删除~~ <http://evil.example>",
    "甲|乙\\|丙 \\ 建设有限公司",
    "&lt;script&gt; &amp;\n# 标题\n建设有限公司",
]


def table_cells(markdown: str) -> list[tuple[str, set[str]]]:
    """Each table cell as a CommonMark renderer (with GFM tables) reads it: its visible text and
    the kinds of inline tokens in it, {"text"} when nothing in it became markup."""
    tokens = MarkdownIt("commonmark").enable(["table", "strikethrough"]).parse(markdown)
    return [
        (
            "".join(child.content for child in token.children or [] if child.type == "text"),
            {child.type for child in token.children or []},
        )
        for previous, token in itertools.pairwise(tokens)
        if token.type == "inline" and previous.type == "td_open"
    ]


def shown_as(name: str) -> str:
    """What a reader must see: the name on one line, a formula-like start behind a quote."""
    flat = " ".join(name.split())
    return "'" + flat if flat[0] in "=+-@" else flat


def test_hostile_names_are_shown_as_text_not_markup_or_formulas(
    engine: Engine, tmp_path: Path
) -> None:
    with engine.begin() as conn:
        insert(conn, Company.__table__, [company(i, n) for i, n in enumerate(HOSTILE_NAMES, 1)])
        insert(
            conn,
            License.__table__,
            [
                license_(i, i, "建筑业企业资质", f"D{i:03d}", validity_end=TODAY)
                for i in range(1, len(HOSTILE_NAMES) + 1)
            ],
        )
    report = build(engine, tmp_path)

    cells = table_cells(report.markdown.split("## Changes this week")[0])
    assert len(cells) == 6 * len(HOSTILE_NAMES)  # no name added or swallowed a column
    companies = cells[2::6]
    assert [text for text, _ in companies] == [shown_as(name) for name in HOSTILE_NAMES]
    assert all(kinds == {"text"} for _, kinds in companies), companies
    headings = [line for line in report.markdown.splitlines() if line.startswith("#")]
    assert len(headings) == 4  # the report's own; a line break in a name never starts a line


def test_the_markdown_check_sees_markup(tmp_path: Path) -> None:
    """table_cells is not vacuous: an unescaped link, image or HTML shows up as tokens."""
    markdown = "| a | b | c |\n|---|---|---|\n| [x](http://e) | ![i](http://e/i.png) | <b>b</b> |\n"
    kinds = [kinds for _, kinds in table_cells(markdown)]
    assert "link_open" in kinds[0] and "image" in kinds[1] and "html_inline" in kinds[2]
