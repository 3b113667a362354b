"""Crafted data with known answers for the analytics views, queries and report.

Dates that the views compare with CURRENT_DATE are placed relative to the database's own
CURRENT_DATE, so the known answers hold on any day and on both backends.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from models import ApiCall, Company, License, LicenseChange, LicenseName

UTC = dt.UTC
NOW = dt.datetime.now(UTC)


@dataclass(frozen=True)
class Crafted:
    """What the crafted database holds: its CURRENT_DATE and the moment it was loaded."""

    today: dt.date
    now: dt.datetime


def database_today(conn: Connection) -> dt.date:
    return conn.execute(sa.select(sa.type_coerce(sa.func.current_date(), sa.Date))).scalar_one()


def insert(conn: Connection, table: sa.Table, rows: list[dict[str, Any]]) -> None:
    conn.execute(sa.insert(table), rows)


def company(id_: int, name: str, **values: Any) -> dict[str, Any]:
    defaults = {
        "uscc": None,
        "active": True,
        "fetch_status": "pending",
        "last_error_code": None,
        "consecutive_failures": 0,
        "last_attempt_at": None,
        "last_fetched_at": None,
    }
    return {
        "id": id_,
        "name": name,
        "match_key": name,
        "query": name,
        "shard": id_ % 32,
        **defaults,
        **values,
    }


def license_(
    id_: int, company_id: int, category: str, lic_no: str, **values: Any
) -> dict[str, Any]:
    defaults = {
        "issue_org": None,
        "validity_start": None,
        "validity_end": None,
        "validity_open_ended": False,
        "removed_at": None,
    }
    return {
        "id": id_,
        "company_id": company_id,
        "category": category,
        "lic_no": lic_no,
        "content_hash": f"hash-{id_}",
        **defaults,
        **values,
    }


def names(license_id: int, *entries: tuple[int, str, str | None]) -> list[dict[str, Any]]:
    return [
        {"license_id": license_id, "position": position, "name": name, "grade": grade}
        for position, name, grade in entries
    ]


def change(
    id_: int,
    license_id: int,
    company_id: int,
    change_type: str,
    detected_at: dt.datetime,
    changed_fields: Any = None,
) -> dict[str, Any]:
    return {
        "id": id_,
        "license_id": license_id,
        "company_id": company_id,
        "change_type": change_type,
        "changed_fields": changed_fields,
        "detected_at": detected_at,
        "run_id": f"run-{id_}",
    }


def call(company_id: int | None, outcome: str, *, billable: bool = False) -> dict[str, Any]:
    return {
        "company_id": company_id,
        "called_at": NOW - dt.timedelta(hours=1),
        "attempt": 1,
        "http_status": 200,
        "outcome": outcome,
        "billable": billable,
    }


def load_crafted(engine: Engine) -> Crafted:
    """Three companies, seven licences, five changes and six calls; answers in the tests."""
    with engine.begin() as conn:
        today = database_today(conn)

        def day(offset: int) -> dt.date:
            return today + dt.timedelta(days=offset)

        insert(
            conn,
            Company.__table__,
            [
                company(
                    1,
                    "中国建筑第一工程局有限公司",
                    uscc="91110000101107173B",
                    fetch_status="ok",
                    last_attempt_at=NOW,
                    last_fetched_at=NOW,
                ),
                company(
                    2,
                    "河南省建筑科学研究院有限公司",
                    uscc="914100004158036979",
                    fetch_status="failed",
                    last_error_code=260203,
                    consecutive_failures=2,
                    last_attempt_at=NOW,
                    last_fetched_at=NOW - dt.timedelta(days=40),
                ),
                company(3, "空壳建设有限公司", active=False),
            ],
        )
        insert(
            conn,
            License.__table__,
            [
                license_(
                    1,
                    1,
                    "建筑业企业资质",
                    "D111",
                    validity_end=day(30),
                    validity_start=dt.date(2021, 1, 5),
                    issue_org="住房和城乡建设部",
                ),
                license_(2, 1, "建筑业企业资质", "D112", validity_end=day(91)),
                license_(3, 1, "工程设计资质", "A111", validity_open_ended=True),
                license_(
                    4,
                    2,
                    "工程勘察资质",
                    "B999",
                    validity_end=day(10),
                    removed_at=NOW - dt.timedelta(days=1),
                ),
                license_(5, 2, "工程勘察资质", "B241001611", validity_end=day(-5)),
                license_(6, 2, "建筑业企业资质", "D241", validity_end=day(90)),
                license_(7, 2, "建筑业企业资质", "D242"),
            ],
        )
        insert(
            conn,
            LicenseName.__table__,
            [
                # Inserted out of position order: the views must follow `position`.
                *names(
                    1,
                    (1, "市政公用工程施工总承包一级", "一级"),
                    (0, "建筑工程施工总承包特级", "特级"),
                ),
                *names(
                    2,
                    (0, "钢结构工程专业承包二级", "二级"),
                    (1, "地基基础工程专业承包二级", "二级"),
                ),
                *names(3, (0, "建筑行业（建筑工程）甲级", "甲级")),
                *names(4, (0, "工程勘察综合类甲级", "甲级")),
                *names(
                    5,
                    (0, "工程勘察岩土工程专业（岩土工程物探测试检测监测）乙级", "乙级"),
                    (1, "工程测量专业丙级", "丙级"),
                ),
                *names(6, (0, "施工劳务不分等级", "不分等级")),
            ],
        )
        insert(
            conn,
            LicenseChange.__table__,
            [
                change(1, 1, 1, "added", NOW - dt.timedelta(days=30)),
                change(
                    2, 2, 1, "updated", NOW - dt.timedelta(days=2), ["validity_end", "lic_name"]
                ),
                change(3, 4, 2, "removed", NOW - dt.timedelta(days=1), sa.null()),
                change(4, 5, 2, "removed", NOW - dt.timedelta(days=10)),
                change(5, 5, 2, "restored", NOW - dt.timedelta(days=9), []),
            ],
        )
        insert(
            conn,
            ApiCall.__table__,
            [
                call(1, "ok", billable=True),
                call(1, "transient"),
                call(1, "ok", billable=True),
                call(2, "transient"),
                call(2, "quota"),
                call(None, "fatal"),
            ],
        )
    return Crafted(today=today, now=NOW)


@pytest.fixture
def crafted(engine: Engine) -> Crafted:
    return load_crafted(engine)
