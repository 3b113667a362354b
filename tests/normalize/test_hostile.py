"""Hostile bodies in normalize (docs/architecture.md#hostile-answers): the pure parser,
parametrized, then the rules on a database (both backends): an implausible updated_time is an
anomaly that is never applied, error_code 0 with no items infers no removal, NUL is stripped before
storing and before change detection, and no body of any shape stops the chunk.
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
from pipelines.normalize.parsing import (
    ITEM_FIELDS,
    MAX_BODY_BYTES,
    ParsedResponse,
    ParseIssues,
    clean_text,
    parse_item,
    parse_response,
)
from tests.normalize import add_raw, body, changes, day, digest, item, licence, make_company

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


@pytest.mark.parametrize("noise", ["\\ud800", "\\udfff\\u0000", "\\udc00\\ud800", "\\ud83d"])
def test_lone_surrogates_are_stripped_before_the_content_hash(noise: str) -> None:
    """A lone surrogate (a JSON \\ud800 escape decodes to one) has no UTF-8 form: hashing or
    storing it would fail on every replay of the stored body. It is stripped like NUL."""
    clean = parsed(body([item("A")])).items[0]
    dirty_item = item(
        "A@",
        lic_name=["建筑工程施工总承包二级@", "@市政公用工程施工总承包三级", "@"],
        issue_org="河南省住房和城乡建设厅@",
        validity_start="2021-01@-05",
        validity_end="@2026-01-04@",
    )
    dirty_item["extra@field"] = 1
    text = json.dumps(body([dirty_item]), ensure_ascii=False).replace("@", noise)
    dirty = parse_response(text, FETCHED)
    record = dirty.items[0]
    assert record.content_hash == clean.content_hash and record.lic_no == "A"
    record.content_json().encode("utf-8")
    assert list(dirty.issues.drift) == ["items[].extrafield"]


def test_clean_text_strips_nul_and_every_surrogate_only() -> None:
    assert clean_text("a\x00b\ud800c\udbff\udc00d\udfff") == "abcd"
    assert clean_text("建筑\U0001f600\ue000\uffff") == "建筑\U0001f600\ue000\uffff"
    text = "河南省住房和城乡建设厅"
    assert clean_text(text) is text


# Hostile JSON values (as JSON text), each tried in every field of a body.
NASTY = [
    '"\\ud800"',
    '"a\\udfffb"',
    '"\\udc00\\ud800"',
    '"\\ud800\\u0000 "',
    '" \\u0000\\ud83d "',
    '"²"',
    '"①"',
    '"٣"',
    '"-٣٤"',
    '"1²"',
    '"' + "9" * 5000 + '"',
    '"-' + "9" * 20 + '"',
    '"+260204"',
    "9" * 4000,  # the largest ints json.loads reads
    "-" + "9" * 4000,
    "9" * 5000,  # json.loads refuses it: not JSON
    "NaN",
    "Infinity",
    "-Infinity",
    "1e300",
    "-1e300",
    "1e400",
    "1.5",
    "-0.0",
    "-5",
    "0",
    "260204",
    "4102444800000",
    "true",
    "false",
    "null",
    "[]",
    "{}",
    '[["x", [null, NaN]], {"a": "\\ud800"}]',
    '{"\\ud800": [1e300]}',
    '"  "',
    '"长期\\ud800"',
    '"2025-01-01 10:00:0\\ud800"',
    '"2025-01-01\t10:00:00"',  # a literal tab inside the string
    '"\\u0000"',
]
PLACE = "@@nasty@@"
FIELDS = sorted(ITEM_FIELDS)


def _with(name: str, value: Any, lic_no: str = "A") -> dict[str, Any]:
    """item(lic_no) with one field set to `value`."""
    return {**item(lic_no), name: value}


def _bodies_with_nasty_values() -> list[tuple[str, str]]:
    """(where, body text) for every field of a body and every value of NASTY."""
    shapes: dict[str, Any] = {
        **{f"items[].{name}": body([_with(name, PLACE), item("B")]) for name in FIELDS},
        "items[].lic_name[]": body([item("A", lic_name=["甲级", PLACE]), item("B")]),
        "items[]": body([PLACE, item("B")]),  # type: ignore[list-item]
        "result.total": body([item("A"), item("B")], total=PLACE),
        "result.items": {"error_code": 0, "result": {"items": PLACE}},
        "result": {"error_code": 0, "result": PLACE},
        "error_code": body([item("A"), item("B")], error_code=PLACE),
        "reason": body([item("A"), item("B")], reason=PLACE),
        "sign": body([item("A"), item("B")], sign=PLACE),
    }
    cases = []
    for where, shape in shapes.items():
        template = json.dumps(shape, ensure_ascii=False)
        cases += [(where, template.replace(f'"{PLACE}"', value)) for value in NASTY]
    keyed = body([{**item("A"), PLACE: 1}, item("B")], **{PLACE: 1})
    keyed["result"][PLACE] = 1
    template = json.dumps(keyed, ensure_ascii=False)
    cases += [("keys", template.replace(f'"{PLACE}"', v)) for v in NASTY if v.startswith('"')]
    return cases


NASTY_BODIES = _bodies_with_nasty_values()


def _assert_storable(result: ParsedResponse) -> None:
    """Everything normalize hashes or stores from a parsed response encodes as UTF-8 and has
    no NUL."""
    texts = [result.issues.problem or "", *result.issues.drift, *result.issues.unparseable]
    texts.append(json.dumps(result.issues.implausible, ensure_ascii=False))
    for record in result.items:
        assert len(record.content_hash) == 64
        texts += [record.content_json(), record.category, record.lic_no, *record.names]
    for text in texts:
        text.encode("utf-8")
        assert "\x00" not in text


@pytest.mark.parametrize(
    ("where", "text"),
    NASTY_BODIES,
    ids=[f"{w}-{n % len(NASTY)}" for n, (w, _) in enumerate(NASTY_BODIES)],
)
def test_parse_response_never_raises_whatever_a_field_holds(where: str, text: str) -> None:
    result = parse_response(text, FETCHED)
    assert isinstance(result, ParsedResponse)
    _assert_storable(result)
    if where.startswith("items[]") and result.issues.problem is None:
        assert "B" in {r.lic_no for r in result.items}  # the other item is still applied


@pytest.mark.parametrize("code", ["²", "①", "٣", "9" * 5000, "1" * 10, 10**12, True, False, 0.0])
def test_an_odd_error_code_is_invalid(code: Any) -> None:
    result = parsed(body([item("A")], error_code=code))
    assert result.status == "invalid" and not result.items and not result.lists_every_licence


@pytest.mark.parametrize("total", ["²", "①", "٣", "9" * 5000, "1" * 10, 10**12, True, -1, 2.0])
def test_an_odd_total_is_invalid_with_its_items_applied(total: Any) -> None:
    result = parsed(body([item("A"), item("B")], total=total))
    assert result.status == "invalid" and [r.lic_no for r in result.items] == ["A", "B"]
    assert result.issues.unparseable["total"] == 1 and not result.lists_every_licence


@pytest.mark.parametrize(("code", "total"), [(" 0 ", " 2 "), ("+0", "+2"), (0, 2)])
def test_codes_and_totals_as_ascii_digit_text_are_read(code: str, total: str) -> None:
    result = parsed(body([item("A"), item("B")], error_code=code, total=total))
    assert result.status == "complete" and result.total == 2 and result.lists_every_licence


# ---------------------------------------------------------------------------- on a database


def test_a_literal_tab_or_newline_inside_a_string_is_data(engine: Engine) -> None:
    """json.loads is strict by default and calls such a body not JSON; normalize is lenient."""
    company = make_company(engine)
    text = json.dumps(body([item("A", lic_scope="可承担@T相应@N等级工程")]), ensure_ascii=False)
    text = text.replace("@T", "\t").replace("@N", "\n")
    assert "\t" in text and "\n" in text
    add_raw(engine, company, text, day(0))
    report = normalize_pending(engine, shards=[0], run_id="r")
    assert report.changes == {"added": 1}
    assert licence(engine, "A")["lic_scope"] == "可承担\t相应\n等级工程"


def test_nasty_values_in_every_item_field_never_stop_the_chunk(engine: Engine) -> None:
    """One body whose items carry every hostile value in every field lands on both backends,
    on a first run and on a rebuilding replay of the stored body."""
    decodable = [v for v in NASTY if v != "9" * 5000]
    items = [
        _with(name, f"{PLACE}{name}-{n}", f"{name}-{n}")
        for n in range(len(decodable))
        for name in FIELDS
    ]
    text = json.dumps(body([*items, item("B")], total=None), ensure_ascii=False)
    for n, value in enumerate(decodable):
        for name in FIELDS:
            text = text.replace(f'"{PLACE}{name}-{n}"', value)
    company = make_company(engine)
    add_raw(engine, company, text, day(0))
    normalize_pending(engine, shards=[0], run_id="r")
    first = digest(engine)
    assert any(row[2] == "B" for row in first["licenses"])
    renormalize(engine, shards=[0], run_id="replay", rebuild=True)
    assert digest(engine) == first


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
        json.dumps(body([item("A\ud800", issue_org="\udfff河南省住房和城乡建设厅"), item("B")])),
        json.dumps(body([item("A"), item("B")], total="①")),
        json.dumps(body([item("A"), item("B")], error_code="²")),
    ]
    clean_days = [body([item("A"), item("B")]), body([item("A", "2025-06-01 00:00:00"), item("B")])]

    poisoned, clean = make_company(engine, name="毒公司"), make_company(engine, name="净公司")
    for company in (poisoned, clean):
        add_raw(engine, company, clean_days[0], day(0))
    normalize_pending(engine, shards=[0], run_id="h0")
    for n, text in enumerate(hostile, start=1):
        add_raw(engine, poisoned, text, day(n))
        normalize_pending(engine, shards=[0], run_id=f"h{n}")
    for company in (poisoned, clean):
        add_raw(engine, company, clean_days[1], day(len(hostile) + 1))
    normalize_pending(engine, shards=[0], run_id="clean")
    after_run = digest(engine)
    # the poisoned company's rows are those of the company that only saw the clean days
    assert _rows_of(after_run, "毒公司") == _rows_of(after_run, "净公司")
    assert _rows_of(after_run, "净公司")["licenses"]  # (not two empty sets)
    # a replay of everything reproduces them
    renormalize(engine, shards=[0], run_id="replay", rebuild=True)
    assert _without_company_times(digest(engine)) == _without_company_times(after_run)


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
