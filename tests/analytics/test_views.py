"""The analytics views answer the same known answers on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
import random
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from models import Company, License, LicenseName
from pipelines.analytics import views
from tests.analytics.conftest import Crafted, company, insert, license_, names

BIG = "中国建筑第一工程局有限公司"
HENAN = "河南省建筑科学研究院有限公司"
GRADE_ORDER = ["特级", "一级", "甲级", "二级", "乙级", "三级", "丙级", "丁级", "不分等级", "暂定级"]


def rows(engine: Engine, view: sa.Table, *columns: str) -> list[dict[str, Any]]:
    query = sa.select(*(view.c[name] for name in columns)) if columns else sa.select(view)
    with engine.connect() as conn:
        return [dict(row) for row in conn.execute(query).mappings()]


def test_current_licenses_lists_each_licence_not_removed(engine: Engine, crafted: Crafted) -> None:
    today = crafted.today
    found = sorted(rows(engine, views.current_licenses), key=lambda r: r["license_id"])

    assert [r["license_id"] for r in found] == [1, 2, 3, 5, 6, 7]  # 4 was removed
    first = found[0]
    assert first == {
        "license_id": 1,
        "company_id": 1,
        "company_name": BIG,
        "uscc": "91110000101107173B",
        "category": "建筑业企业资质",
        "lic_no": "D111",
        "names": "建筑工程施工总承包特级、市政公用工程施工总承包一级",
        "grades": "特级、一级",
        "issue_org": "住房和城乡建设部",
        "validity_start": dt.date(2021, 1, 5),
        "validity_end": today + dt.timedelta(days=30),
        "validity_open_ended": False,
        "days_to_expiry": 30,
    }
    by_id = {r["license_id"]: r for r in found}
    assert by_id[2]["names"] == "钢结构工程专业承包二级、地基基础工程专业承包二级"
    assert by_id[2]["grades"] == "二级"  # distinct
    assert by_id[5]["grades"] == "乙级、丙级"
    assert by_id[7]["names"] is None and by_id[7]["grades"] is None


def test_days_to_expiry_counts_whole_days_and_is_null_when_open_ended_or_unknown(
    engine: Engine, crafted: Crafted
) -> None:
    found = rows(
        engine, views.current_licenses, "license_id", "days_to_expiry", "validity_open_ended"
    )

    assert {r["license_id"]: r["days_to_expiry"] for r in found} == {
        1: 30,
        2: 91,
        3: None,
        5: -5,
        6: 90,
        7: None,
    }
    assert all(type(r["days_to_expiry"]) is int for r in found if r["days_to_expiry"] is not None)
    assert {r["license_id"] for r in found if r["validity_open_ended"]} == {3}


def test_expiring_licenses_are_current_ones_ending_within_90_days(
    engine: Engine, crafted: Crafted
) -> None:
    found = rows(engine, views.expiring_licenses, "license_id", "days_to_expiry")

    # 4 ends in 10 days but was removed; 5 has expired; 2 ends in 91 days.
    assert sorted((r["license_id"], r["days_to_expiry"]) for r in found) == [(1, 30), (6, 90)]


def test_license_change_log_reads_as_one_line_per_change(engine: Engine, crafted: Crafted) -> None:
    found = sorted(rows(engine, views.license_change_log), key=lambda r: r["change_id"])

    assert [(r["change_id"], r["change_type"], r["changed_fields"]) for r in found] == [
        (1, "added", None),  # JSON null
        (2, "updated", "validity_end, lic_name"),
        (3, "removed", None),  # SQL NULL
        (4, "removed", None),
        (5, "restored", None),  # empty array
    ]
    removed = found[2]
    assert removed["company_name"] == HENAN
    assert removed["uscc"] == "914100004158036979"
    assert (removed["category"], removed["lic_no"], removed["names"]) == (
        "工程勘察资质",
        "B999",
        "工程勘察综合类甲级",
    )
    assert removed["detected_at"] == crafted.now - dt.timedelta(days=1)
    assert removed["run_id"] == "run-3"


def test_company_summary_has_a_row_per_company_and_category(
    engine: Engine, crafted: Crafted
) -> None:
    found = rows(engine, views.company_qualification_summary)
    summary = sorted(
        (
            r["company_id"],
            r["license_count"],
            r["category"] or "",
            r["licenses"],
            r["names"],
            r["highest_grade"],
        )
        for r in found
    )

    assert summary == [
        (1, 3, "工程设计资质", 1, 1, "甲级"),
        (1, 3, "建筑业企业资质", 2, 4, "特级"),
        (2, 3, "工程勘察资质", 1, 2, "乙级"),  # the removed 甲级 licence does not count
        (2, 3, "建筑业企业资质", 2, 1, "不分等级"),
        (3, 0, "", 0, 0, None),  # a company without licences still has a row
    ]
    assert {r["name"] for r in found if r["company_id"] == 3} == {"空壳建设有限公司"}


def test_grades_follow_the_documented_order(engine: Engine) -> None:
    shuffled = random.Random(7).sample(GRADE_ORDER, len(GRADE_ORDER))
    with engine.begin() as conn:
        # Company i holds every grade from GRADE_ORDER[i] down, in a shuffled order.
        insert(conn, Company.__table__, [company(i + 1, f"公司{i}") for i in range(10)])
        insert(
            conn, License.__table__, [license_(i + 1, i + 1, "资质", f"L{i}") for i in range(10)]
        )
        insert(
            conn,
            LicenseName.__table__,
            [
                *(
                    row
                    for i in range(10)
                    for row in names(
                        i + 1,
                        *(
                            (position, f"资质名称{grade}", grade)
                            for position, grade in enumerate(
                                g for g in shuffled if g in GRADE_ORDER[i:]
                            )
                        ),
                    )
                ),
                *names(1, (99, "没有等级的资质名称", None)),
            ],
        )

    grades = {r["license_id"]: r["grades"] for r in rows(engine, views.current_licenses)}
    highest = {
        r["company_id"]: r["highest_grade"]
        for r in rows(engine, views.company_qualification_summary)
    }

    assert grades[1] == "、".join(GRADE_ORDER)
    assert highest == {i + 1: grade for i, grade in enumerate(GRADE_ORDER)}


def test_fetch_health_counts_calls_per_company(engine: Engine, crafted: Crafted) -> None:
    found = sorted(rows(engine, views.fetch_health), key=lambda r: r["company_id"])

    assert [
        (
            r["company_id"],
            r["active"],
            r["fetch_status"],
            r["last_error_code"],
            r["consecutive_failures"],
            r["calls_total"],
            r["calls_failed"],
            r["calls_billable"],
        )
        for r in found
    ] == [
        (1, True, "ok", None, 0, 3, 1, 2),
        (2, True, "failed", 260203, 2, 2, 2, 0),
        (3, False, "pending", None, 0, 0, 0, 0),
    ]
    henan = found[1]
    assert henan["name"] == HENAN
    assert henan["last_attempt_at"] == crafted.now
    assert henan["last_fetched_at"] == crafted.now - dt.timedelta(days=40)
