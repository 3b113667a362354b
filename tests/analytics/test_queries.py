"""The example queries in pipelines/analytics/queries/ give known answers on both backends."""

from __future__ import annotations

import datetime as dt

from sqlalchemy.engine import Engine

from models import Company, License, LicenseName
from pipelines.analytics.views import example_query, example_query_names
from tests.analytics.conftest import Crafted, company, insert, license_, names


def test_every_shipped_query_is_covered_here() -> None:
    assert example_query_names() == [
        "expiring_next_quarter",
        "lost_qualifications",
        "top_grade_holders",
    ]


def test_lost_qualifications_lists_this_weeks_removals(engine: Engine, crafted: Crafted) -> None:
    since = crafted.now - dt.timedelta(days=7)
    with engine.connect() as conn:
        found = conn.execute(example_query("lost_qualifications"), {"since": since}).all()

    # The removal 10 days ago is outside the week; the one a day ago is in it.
    assert [(r.company_name, r.category, r.lic_no, r.names) for r in found] == [
        ("河南省建筑科学研究院有限公司", "工程勘察资质", "B999", "工程勘察综合类甲级"),
    ]
    assert found[0].detected_at == crafted.now - dt.timedelta(days=1)


def test_expiring_next_quarter_takes_the_quarter_bounds(engine: Engine) -> None:
    ends = {  # lic_no → validity_end; the next quarter is 2027-01-01 .. 2027-03-31
        "Q4-last-day": dt.date(2026, 12, 31),
        "Q1-first-day": dt.date(2027, 1, 1),
        "Q1-last-day": dt.date(2027, 3, 31),
        "Q2-first-day": dt.date(2027, 4, 1),
    }
    with engine.begin() as conn:
        insert(conn, Company.__table__, [company(1, "甲公司"), company(2, "乙公司")])
        insert(
            conn,
            License.__table__,
            [
                *(
                    license_(i, 1 + i % 2, "建筑业企业资质", lic_no, validity_end=end)
                    for i, (lic_no, end) in enumerate(ends.items(), start=1)
                ),
                license_(
                    9,
                    1,
                    "建筑业企业资质",
                    "Q1-removed",
                    validity_end=dt.date(2027, 2, 1),
                    removed_at=dt.datetime(2026, 11, 1, tzinfo=dt.UTC),
                ),
            ],
        )
        insert(conn, LicenseName.__table__, names(2, (0, "施工劳务不分等级", "不分等级")))

    bounds = {"start_date": dt.date(2027, 1, 1), "end_date": dt.date(2027, 4, 1)}
    with engine.connect() as conn:
        found = conn.execute(example_query("expiring_next_quarter"), bounds).all()

    assert [(r.lic_no, r.company_name, r.validity_end, r.names) for r in found] == [
        ("Q1-first-day", "甲公司", dt.date(2027, 1, 1), "施工劳务不分等级"),
        ("Q1-last-day", "乙公司", dt.date(2027, 3, 31), None),
    ]


def test_top_grade_holders_counts_special_and_grade_a_names(
    engine: Engine, crafted: Crafted
) -> None:
    with engine.connect() as conn:
        found = conn.execute(example_query("top_grade_holders")).all()

    # Company 2's 甲级 licence was removed; company 3 holds nothing.
    assert [tuple(r) for r in found] == [
        (1, "中国建筑第一工程局有限公司", "91110000101107173B", 1, 1),
    ]
