"""Hostile bodies in normalize (DESIGN.md "Hostile answers"): the pure parser, parametrized,
then the rules on a database (both backends): an implausible updated_time is an anomaly that is
never applied, error_code 0 with no items infers no removal, NUL is stripped before storing and
before change detection, and no body of any shape stops the chunk.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from models import License, LicenseChange, LicenseVersion
from pipelines.normalize import normalize_pending, renormalize
from pipelines.normalize.parsing import MAX_BODY_BYTES, ParseIssues, parse_item, parse_response
from tests.normalize import add_raw, body, changes, day, digest, item, make_company

FETCHED = day(10)  # 2026-01-11 02:00 Asia/Shanghai


def parsed(payload: Any, fetched_at: dt.datetime | None = FETCHED):  # type: ignore[no-untyped-def]
    text = payload if isinstance(payload, str) else json.dumps(payload, ensure_ascii=False)
    return parse_response(text, fetched_at)


# ---------------------------------------------------------------------------- pure parsing


@pytest.mark.parametrize(
    ("updated", "plausible"),
    [
        ("1979-12-31 23:59:59", False),
        ("1980-01-01 00:00:00", True),
        ("1900-01-01", False),
        ("2026-01-12 02:00:00", True),  # fetch time + 1 day exactly
        ("2026-01-12 02:00:01", False),
        ("2099-01-01", False),
        ("9999-12-31 23:59:59", False),
        (-2208988800000, False),  # epoch ms of 1900
        (4102444800000, False),  # epoch ms of 2100
        ("2025-06-01 08:00:00", True),
        (None, True),  # missing: unknown, not implausible (Parsing rules)
        ("not a time", True),  # unparseable: null and counted (Parsing rules)
    ],
)
def test_implausible_updated_time_is_an_anomaly_not_an_item(updated: Any, plausible: bool) -> None:
    result = parsed(body([item("A", updated), item("B")]))
    assert [r.lic_no for r in result.items] == (["A", "B"] if plausible else ["B"])
    assert bool(result.issues.implausible) is not plausible
    assert result.lists_every_licence is plausible  # no removal inferred around an anomaly


def test_without_a_fetch_time_only_the_past_bound_applies() -> None:
    issues = ParseIssues()
    assert parse_item(item("A", "2999-01-01"), issues) is not None
    assert parse_item(item("A", "1970-01-02"), issues) is None and len(issues.implausible) == 1


@pytest.mark.parametrize("payload", [body([]), body([], total=0), body([], total=None)])
def test_success_without_items_lists_nothing(payload: dict) -> None:
    result = parsed(payload)
    assert result.issues.empty_success and not result.lists_every_licence and not result.items


DEEP = '{"error_code":0,"result":{"items":' + "[" * 100_000 + "]" * 100_000 + "}}"


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        (DEEP, "JSON nested too deep"),
        ("[" * 100_000, "JSON nested too deep"),
        ('{"error_code":0,"result":"x"}', "result or result.items of the wrong type"),
        ('{"error_code":0,"result":{"items":{"a":1}}}', "result or result.items of the wrong type"),
        ('{"error_code":0,"result":null}', "result or result.items of the wrong type"),
        ("[1,2]", "not a JSON object"),
        ('{"error_code":0', "not JSON"),
        (json.dumps(body([item(lic_scope="x" * MAX_BODY_BYTES)])), "over the size cap"),
    ],
)
def test_unusable_bodies_are_invalid_never_raise(text: str, problem: str) -> None:
    result = parse_response(text)
    assert result.status == "invalid" and not result.items and result.issues.problem == problem
    assert not result.lists_every_licence


@pytest.mark.parametrize(
    "fields",
    [
        {"lic_name": 12345},
        {"lic_name": [1, None, {"a": 1}, "甲级"]},
        {"category": 42},
        {"issue_org": ["x"], "url": {"a": 1}},
        {"validity_start": True, "validity_end": 3.5},
        {"created_time": [], "updated_time": 1.5},
    ],
)
def test_wrong_item_types_never_raise(fields: dict) -> None:
    result = parsed(body([item("A", **fields), item("B")], total="three"))
    assert {r.lic_no for r in result.items} >= {"B"}
    assert not result.lists_every_licence  # total is not a number: invalid, items still applied


@pytest.mark.parametrize("noise", ["\x00", "\x00\x00 ", " \x00"])
def test_nul_is_stripped_before_the_content_hash(noise: str) -> None:
    clean = parsed(body([item("A")])).items[0]
    dirty_item = item(
        "A" + noise,
        lic_name=[f"建筑工程施工总承包二级{noise}", f"{noise}市政公用工程施工总承包三级"],
        issue_org=f"河南省住房和城乡建设厅{noise}",
        validity_start="2021-01\x00-05",  # a date too: NUL stripped before it is parsed
        validity_end="\x002026-01-04\x00",
    )
    dirty_item["extra\x00field"] = 1
    dirty = parsed(body([dirty_item]))
    record = dirty.items[0]
    assert record.content_hash == clean.content_hash and record.lic_no == "A"
    assert "\x00" not in record.content_json() and all("\x00" not in k for k in dirty.issues.drift)


# ---------------------------------------------------------------------------- on a database


def test_implausible_updated_time_never_reaches_licences_versions_or_changes(
    engine: Engine,
) -> None:
    company = make_company(engine)
    add_raw(engine, company, body([item("A"), item("B")]), day(0))
    normalize_pending(engine, shards=[0], run_id="r0")
    before = digest(engine)
    future = item("A", "2030-01-01 00:00:00", issue_org="伪造")
    ancient = item("C", "1901-01-01 00:00:00")
    add_raw(engine, company, body([future, item("B"), ancient]), day(1))
    report = normalize_pending(engine, shards=[0], run_id="r1")
    assert report.implausible_times == 2
    kinds = sorted(a["kind"] for a in report.anomalies)
    assert kinds == ["implausible_updated_time", "implausible_updated_time"]
    assert {a["lic_no"] for a in report.anomalies} == {"A", "C"}
    assert all(a["company_id"] == company for a in report.anomalies)
    after = digest(engine)
    # nothing but B's last_seen_at and the company's last response moved: A not updated nor
    # removed, C not added
    assert after["license_versions"] == before["license_versions"]
    assert after["license_changes"] == before["license_changes"]
    with engine.connect() as conn:
        lics = {r.lic_no: r for r in conn.execute(sa.select(License.lic_no, License.removed_at))}
        assert conn.execute(sa.select(sa.func.count()).select_from(LicenseVersion)).scalar() == 2
    assert set(lics) == {"A", "B"} and all(r.removed_at is None for r in lics.values())
    assert len(changes(engine)) == 2


def test_empty_success_infers_no_removal_and_is_an_anomaly(engine: Engine) -> None:
    company = make_company(engine)
    add_raw(engine, company, body([item("A"), item("B")]), day(0))
    normalize_pending(engine, shards=[0], run_id="r0")
    add_raw(engine, company, body([]), day(1))
    report = normalize_pending(engine, shards=[0], run_id="r1")
    assert report.empty_success == 1
    assert [a["kind"] for a in report.anomalies] == ["empty_success"]
    with engine.connect() as conn:
        assert (
            conn.execute(
                sa.select(sa.func.count())
                .select_from(License)
                .where(License.removed_at.is_not(None))
            ).scalar()
            == 0
        )
        assert (
            conn.execute(
                sa.select(sa.func.count())
                .select_from(LicenseChange)
                .where(LicenseChange.change_type == "removed")
            ).scalar()
            == 0
        )


def test_hostile_bodies_leave_the_tables_as_a_clean_run_does(engine: Engine) -> None:
    """Every hostile body lands between two clean days for one company, beside a company that
    only sees clean days; on both backends the tables equal those of the clean days alone."""
    hostile = [
        DEEP,
        '{"error_code":0,"result":null}',
        '{"error_code":0,"result":{"items":"x","total":"y"}}',
        json.dumps(body([item("A", "2031-01-01 00:00:00"), item("B")])),
        json.dumps(body([])),
        json.dumps(body([item("A\x00", issue_org="河南省住房和城乡建设厅\x00"), item("\x00B")])),
        '{"error_code":0,"result":{"items":[1,null,"x",[],{"lic_no":"Z"}]}}',
    ]
    clean_days = [body([item("A"), item("B")]), body([item("A", "2025-06-01 00:00:00"), item("B")])]

    poisoned = make_company(engine, name="毒公司")
    add_raw(engine, poisoned, clean_days[0], day(0))
    for n, text in enumerate(hostile, start=1):
        add_raw(engine, poisoned, text, day(n))
        normalize_pending(engine, shards=[0], run_id=f"h{n}")
    add_raw(engine, poisoned, clean_days[1], day(len(hostile) + 1))
    normalize_pending(engine, shards=[0], run_id="clean")
    poisoned_digest = _without_company_times(digest(engine))
    assert _without_company_times(digest(engine)) == poisoned_digest
    # a replay of everything reproduces it
    renormalize(engine, shards=[0], run_id="replay", rebuild=True)
    assert _without_company_times(digest(engine)) == poisoned_digest

    with engine.begin() as conn:
        conn.execute(sa.delete(License))
    clean = make_company(engine, name="净公司")
    add_raw(engine, clean, clean_days[0], day(0))
    add_raw(engine, clean, clean_days[1], day(len(hostile) + 1))
    normalize_pending(engine, shards=[0], run_id="only-clean")
    assert _rows_of(digest(engine), "净公司") == _rows_of(poisoned_digest, "毒公司")


def _without_company_times(data: dict[str, list[tuple]]) -> dict[str, list[tuple]]:
    return {k: v for k, v in data.items() if k != "companies"}


def _rows_of(data: dict[str, list[tuple]], name: str) -> dict[str, list[tuple]]:
    """One company's rows without its name, and changes without their raw_response_id."""
    return {
        table: [
            row[1:-1] if table == "license_changes" else row[1:] for row in rows if row[0] == name
        ]
        for table, rows in _without_company_times(data).items()
    }


@pytest.mark.parametrize("depth", [300, 500, 700, 900, 990, 999])
@pytest.mark.parametrize(
    "field", ["category", "lic_no", "lic_name", "issue_org", "validity_end", "updated_time"]
)
def test_an_item_nested_just_under_the_decoder_limit_is_dropped_alone(
    depth: int, field: str
) -> None:
    nested = "[" * depth + "]" * depth
    text = (
        '{"error_code":0,"result":{"items":[{"category":"c","lic_no":"1","'
        + field
        + '":'
        + nested
        + '},{"category":"y","lic_no":"2"}]}}'
    )
    result = parse_response(text)  # never raises, whatever the stack depth of the caller
    if result.issues.problem == "JSON nested too deep":  # the decoder gave up: nothing applied
        assert not result.items and not result.lists_every_licence
    else:  # decoded: the deep item alone is dropped (or read), the other one applied
        assert "2" in {r.lic_no for r in result.items}
        assert not result.lists_every_licence or len(result.items) == 2


@pytest.mark.parametrize(
    "created",
    ["0001-01-01", "0001-01-01 07:59:59", "9999-12-31 23:59:59", -62135596800000, 253402300799000],
)
def test_extreme_created_times_never_stop_the_chunk(engine: Engine, created: Any) -> None:
    company = make_company(engine)
    add_raw(engine, company, body([item("A", created_time=created), item("B")]), day(0))
    report = normalize_pending(engine, shards=[0], run_id="r")
    assert report.changes == {"added": 2}


LONG_TEXT = "".join(chr(0x4E00 + (i * 7919) % 20000) for i in range(5000))  # incompressible


@pytest.mark.parametrize("field", ["lic_no", "category", "lic_name"])
def test_absurdly_long_keys_and_names_never_stop_the_chunk(engine: Engine, field: str) -> None:
    company = make_company(engine)
    odd = item("A")
    odd[field] = LONG_TEXT if field != "lic_name" else [LONG_TEXT, "建筑工程施工总承包二级"]
    add_raw(engine, company, body([odd, item("B")]), day(0))
    report = normalize_pending(engine, shards=[0], run_id="r")
    assert report.changes == ({"added": 2} if field == "lic_name" else {"added": 1})
    assert sum(report.unparseable.values()) == 1
