"""Parsing of ConLicByName values, items and bodies (pure)."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from pipelines.normalize.parsing import (
    SHANGHAI,
    ParseIssues,
    Unparseable,
    blank_lic_no_key,
    grade_of,
    parse_datetime,
    parse_item,
    parse_names,
    parse_response,
    parse_validity,
)
from tests.normalize import body, item
from tests.shared_fixtures import fixture_path

FIXTURES = fixture_path("qualification_names.json")
# 2021-12-31 00:00 in Beijing is 2021-12-30 16:00 UTC.
MIDNIGHT_MS = 1640880000000


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("2021-12-31", dt.date(2021, 12, 31)),
        ("2021-12-31 00:00:00", dt.date(2021, 12, 31)),
        ("2021-12-31 23:59:59", dt.date(2021, 12, 31)),
        ("2021/12/31", dt.date(2021, 12, 31)),
        ("20211231", dt.date(2021, 12, 31)),
        (MIDNIGHT_MS, dt.date(2021, 12, 31)),
        (str(MIDNIGHT_MS), dt.date(2021, 12, 31)),
        (" 2021-12-31 ", dt.date(2021, 12, 31)),
        ("2021-1-5", dt.date(2021, 1, 5)),
        (None, None),
        ("", None),
        ("   ", None),
    ],
)
def test_validity_dates_in_every_documented_form(raw: object, expected: dt.date | None) -> None:
    parsed = parse_validity(raw)
    assert (parsed.value, parsed.open_ended, parsed.unparseable) == (expected, False, False)


def test_epoch_milliseconds_are_read_in_shanghai_not_utc() -> None:
    # Read in UTC this instant would be the day before.
    assert dt.datetime.fromtimestamp(MIDNIGHT_MS / 1000, dt.UTC).date() == dt.date(2021, 12, 30)
    assert parse_validity(MIDNIGHT_MS).value == dt.date(2021, 12, 31)


@pytest.mark.parametrize("word", ["长期", "永久", " 长期 "])
def test_open_ended_validity(word: str) -> None:
    parsed = parse_validity(word)
    assert (parsed.value, parsed.open_ended, parsed.unparseable) == (None, True, False)


@pytest.mark.parametrize(
    "raw", ["2021-13-01", "2021-02-30", "明年", "31/12/2021", "2021.12.31", "12345", True, 1.5]
)
def test_garbage_dates_are_null_and_flagged(raw: object) -> None:
    parsed = parse_validity(raw)
    assert (parsed.value, parsed.open_ended, parsed.unparseable) == (None, False, True)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("2021-04-15", dt.datetime(2021, 4, 15, tzinfo=SHANGHAI)),
        ("2021-04-15 13:45:10", dt.datetime(2021, 4, 15, 13, 45, 10, tzinfo=SHANGHAI)),
        ("2021/04/15", dt.datetime(2021, 4, 15, tzinfo=SHANGHAI)),
        ("20210415", dt.datetime(2021, 4, 15, tzinfo=SHANGHAI)),
        (MIDNIGHT_MS, dt.datetime(2021, 12, 31, tzinfo=SHANGHAI)),
        (None, None),
        ("", None),
    ],
)
def test_source_times_are_shanghai_wall_clock(raw: object, expected: dt.datetime | None) -> None:
    parsed = parse_datetime(raw)
    assert parsed == expected
    if parsed is not None:
        assert parsed.utcoffset() == dt.timedelta(hours=8)


def test_unparseable_source_time_raises_for_counting() -> None:
    with pytest.raises(Unparseable):
        parse_datetime("yesterday")


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (["甲", "乙"], ("甲", "乙")),
        ("建筑工程施工总承包二级", ("建筑工程施工总承包二级",)),
        (None, ()),
        ([], ()),
        ([" 甲 ", "", "  ", None, "乙"], ("甲", "乙")),
        (["乙", "甲", "乙"], ("乙", "甲")),
        ("  ", ()),
    ],
)
def test_lic_name_shapes(raw: object, expected: tuple[str, ...]) -> None:
    assert parse_names(raw) == expected


def test_missing_lic_name_is_no_names() -> None:
    record = parse_item({k: v for k, v in item().items() if k != "lic_name"}, ParseIssues())
    assert record is not None and record.names == ()


@pytest.mark.parametrize(
    "case", json.loads(FIXTURES.read_text(encoding="utf-8")), ids=lambda c: c["name"]
)
def test_grade_of_every_fixture_name(case: dict) -> None:
    assert grade_of(case["name"]) == case["grade"]


@pytest.mark.parametrize(
    ("name", "grade"),
    [
        ("建筑工程施工总承包壹级", "一级"),
        ("建筑工程施工总承包贰级", "二级"),
        ("工程设计铁道行业甲(Ⅰ)级", "甲级"),
        ("工程设计铁道行业乙（II）级", "乙级"),
        ("工程设计市政行业丁级", "丁级"),
        ("施工劳务暂定级", "暂定级"),
        ("一级建造师继续教育培训乙级", "乙级"),  # the LAST grade word wins
        ("工程监理综合资质", None),
    ],
)
def test_grade_variants(name: str, grade: str | None) -> None:
    assert grade_of(name) == grade


def test_blank_lic_no_key_is_deterministic_and_order_free() -> None:
    key = blank_lic_no_key("建筑业企业资质", ("乙", "甲"))
    assert key == blank_lic_no_key("建筑业企业资质", ("甲", "乙"))
    assert key.startswith("~") and len(key) == 17
    assert key != blank_lic_no_key("设计资质", ("甲", "乙"))
    record = parse_item(item(lic_no="  ", lic_name=["甲", "乙"]), ParseIssues())
    assert record is not None and record.lic_no == blank_lic_no_key("建筑业企业资质", ("甲", "乙"))


def test_reordered_names_have_the_same_content_hash() -> None:
    a = parse_item(item(lic_name=["甲", "乙"]), ParseIssues())
    b = parse_item(item(lic_name=["乙", "甲"]), ParseIssues())
    c = parse_item(item(lic_name=["甲", "丙"]), ParseIssues())
    assert a and b and c
    assert a.content_hash == b.content_hash != c.content_hash
    assert a.content["lic_name"] == ["甲", "乙"] and b.content["lic_name"] == ["乙", "甲"]


def test_format_noise_does_not_change_the_content_hash() -> None:
    plain = parse_item(item(validity_end="2026-01-04", updated_time="2025-01-01"), ParseIssues())
    noisy = parse_item(item(validity_end="20260104", updated_time="2025/01/01"), ParseIssues())
    assert plain and noisy and plain.content_hash == noisy.content_hash


def test_item_fields_are_typed() -> None:
    record = parse_item(item(validity_end="长期", issue_org="  "), ParseIssues())
    assert record is not None
    assert record.validity_end is None and record.open_ended is True
    assert record.issue_org is None
    assert record.validity_start == dt.date(2021, 1, 5)
    assert record.created_time == dt.datetime(2020, 8, 10, tzinfo=SHANGHAI)


@pytest.mark.parametrize(
    ("payload", "status"),
    [
        (body([item("A"), item("B")]), "complete"),
        (body([item("A")], total=None), "complete"),
        (body([item("A")], total="1"), "complete"),
        (body([item("A")], error_code="0"), "complete"),
        (body([item("A")], total=5), "partial"),
        (body(error_code=260204), "not_found"),
        (body(error_code="260204"), "not_found"),
        (body([item("A"), item("B")], total=1), "invalid"),
        (body([item("A")], total="many"), "invalid"),
        (body([item("A")], error_code=10014), "invalid"),
        ({"error_code": 0, "result": None}, "invalid"),
        ({"error_code": 0, "result": {"items": "A"}}, "invalid"),
        ("<html>502 Bad Gateway</html>", "invalid"),
        ('{"error_code": 0, "result": {"items": [', "invalid"),
        ("[]", "invalid"),
    ],
)
def test_response_status(payload: dict | str, status: str) -> None:
    text = payload if isinstance(payload, str) else json.dumps(payload, ensure_ascii=False)
    assert parse_response(text).status == status


def test_only_complete_and_not_found_responses_list_every_licence() -> None:
    def lists_all(payload: dict) -> bool:
        return parse_response(json.dumps(payload)).lists_every_licence

    assert lists_all(body([item("A")]))
    assert lists_all(body(error_code=260204))
    assert not lists_all(body([item("A")], total=3))
    assert not lists_all(body([item("A")], error_code=10014))
    assert not lists_all(body([item("A"), {"lic_no": "B"}]))  # an item without category


def test_drift_missing_fields_and_unparseable_values_are_counted_not_fatal() -> None:
    payload = body(
        [
            item("A", new_field=1, validity_end="下个月"),
            item("B", updated_time="??", another=2, new_field=3),
            {"lic_no": "C"},
            "not an item",
        ],
        total=4,
        extra_top=True,
    )
    payload["result"]["page"] = 1
    parsed = parse_response(json.dumps(payload, ensure_ascii=False))
    assert [r.lic_no for r in parsed.items] == ["A", "B"]
    issues = parsed.issues
    assert dict(issues.drift) == {
        "extra_top": 1,
        "result.page": 1,
        "items[].new_field": 2,
        "items[].another": 1,
    }
    assert issues.missing_required == 2
    assert dict(issues.unparseable) == {"validity_end": 1, "updated_time": 1}
    assert parsed.items[1].updated_time is None
