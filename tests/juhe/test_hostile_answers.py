"""Hostile HTTP 200 answers in a fetch (docs/architecture.md#hostile-answers), scripted with
httpx.MockTransport on a real database (SQLite and PostgreSQL): none of them stops the run for
the other companies, each keeps its ledger row and raw body, the company is `failed` for this
run without a second (maybe billed) request, and normalizing what landed does not fail either.
"""

from __future__ import annotations

import datetime as dt
import json

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from juhe_sandbox import hostile
from juhe_sandbox.server import FAULT_KINDS
from models import License
from pipelines.juhe.client import JuheClient
from pipelines.juhe.errors import JuheUnusableAnswerError
from pipelines.juhe.fetcher import fetch_companies
from pipelines.normalize.parsing import parse_response
from pipelines.normalize.writer import normalize_pending
from pipelines.settings import Secret
from tests.juhe.helpers import add_companies, api_calls, companies_by_name, raw_responses
from tests.juhe.test_fetcher import FakeLimiter

ITEM = {"lic_no": "D1", "category": "建筑", "updated_time": "2025-01-01 10:00:00"}


def ok(items: list[object]) -> str:
    return json.dumps({"error_code": 0, "reason": "success", "result": {"items": items}})


DEEP = '{"error_code":0,"result":' + "[" * 100_000 + "]" * 100_000 + "}"
HOSTILE: dict[str, str] = {
    "深公司": DEEP,
    "大公司": ok([ITEM]) + " " * 300_000,  # over the cap of client() below
    "空结果公司": '{"error_code":0,"reason":"success","result":null}',
    "坏列表公司": '{"error_code":0,"result":{"items":"D1","total":"x"}}',
}
USABLE: dict[str, str] = {
    "零字公司": ok([{**ITEM, "lic_no": "D\x002", "lic_name": ["甲\x00级", 7]}]),
    "类型公司": '{"error_code":0,"result":{"items":[1,null,{"category":5,"lic_no":3}],'
    '"total":"many"}}',
    "正常公司": ok([ITEM]),
}


def client(max_body_bytes: int = 250_000) -> JuheClient:
    def handler(request: httpx.Request) -> httpx.Response:
        name = httpx.QueryParams(request.content.decode())["name"]
        return httpx.Response(200, text={**HOSTILE, **USABLE}[name])

    return JuheClient(
        "http://juhe.test/query",
        Secret("unit-key"),
        transport=httpx.MockTransport(handler),
        max_body_bytes=max_body_bytes,
    )


def test_hostile_answers_fail_only_their_company_and_keep_everything(engine: Engine) -> None:
    companies = add_companies(engine, [*HOSTILE, *USABLE])
    report = fetch_companies(
        engine, companies, client(), FakeLimiter(), run_id="r", concurrency=2, sleep=lambda s: None
    )
    assert (report.landed_ok, report.failed, report.calls) == (len(USABLE), len(HOSTILE), 7)
    assert set(report.failures_by_code) == {"unusable"}
    state = companies_by_name(engine)
    for name in HOSTILE:
        assert state[name].fetch_status == "failed" and state[name].consecutive_failures == 1
    for name in USABLE:
        assert state[name].fetch_status == "ok"
    calls = api_calls(engine)
    assert len(calls) == 7  # one request per company: an unusable answer is not re-bought
    by_company = {c.company_id: c for c in calls}
    ids = {c.name: c.id for c in companies}
    assert by_company[ids["空结果公司"]].billable and by_company[ids["空结果公司"]].error_code == 0
    assert "unusable answer" in by_company[ids["深公司"]].detail
    assert not by_company[ids["深公司"]].billable  # its error_code could not be read
    raws = {r.company_id: r for r in raw_responses(engine)}
    assert len(raws) == 7 and raws[ids["深公司"]].body == DEEP
    assert raws[ids["大公司"]].body == HOSTILE["大公司"][:250_000]  # reading stopped at the cap
    assert all(r.api_call_id is not None for r in raws.values())
    assert "\x00" not in raws[ids["零字公司"]].body

    normalized = normalize_pending(engine, shards=None, run_id="n")
    assert normalized.by_status["invalid"] >= len(HOSTILE)
    assert normalized.hostile["refused at fetch"] == len(HOSTILE)
    with engine.connect() as conn:
        lic_nos = set(conn.execute(sa.select(License.lic_no)).scalars())
    assert lic_nos == {"D1", "D2", "3"}  # the NUL stripped; the odd items did not block the rest
    with engine.connect() as conn:
        holders = set(conn.execute(sa.select(License.company_id)).scalars())
    assert holders == {ids["零字公司"], ids["类型公司"], ids["正常公司"]}


# -- the sandbox's hostile fault kinds (juhe_sandbox/hostile.py) --------------------------------

SANDBOX_OK = {
    "error_code": 0,
    "reason": "success",
    "sign": "s",
    "result": {"total": 1, "items": [{**ITEM, "lic_name": ["建筑工程施工总承包二级"]}]},
}


def test_every_hostile_kind_is_a_sandbox_fault_kind() -> None:
    assert set(hostile.KINDS) <= set(FAULT_KINDS)


@pytest.mark.parametrize("kind", hostile.KINDS)
def test_hostile_kinds_are_refused_or_carry_no_change(kind: str) -> None:
    data, code = hostile.render(kind, SANDBOX_OK)
    assert code == 0
    reply = httpx.MockTransport(lambda request: httpx.Response(200, content=data))
    with JuheClient("http://juhe.test/query", Secret("k"), transport=reply) as juhe:
        try:
            response = juhe.query("x")
        except JuheUnusableAnswerError:
            assert kind in ("deep", "oversize", "result_string", "items_object")
            return
    parsed = parse_response(response.body_text, dt.datetime.now(dt.UTC))
    assert not parsed.lists_every_licence or kind == "nul"
    clean = parse_response(json.dumps(SANDBOX_OK), dt.datetime.now(dt.UTC)).items
    if kind in ("nul", "wrong_types"):
        assert [r.content_hash for r in parsed.items] == [r.content_hash for r in clean]
    else:
        assert parsed.items == []


def test_hostile_kinds_leave_not_found_answers_alone_except_deep_and_oversize() -> None:
    not_found = {"error_code": 260204, "reason": "查询无结果", "result": None}
    for kind in ("nul", "wrong_types", "future_time", "ancient_time"):
        data, code = hostile.render(kind, not_found)
        assert json.loads(data) == not_found and code == 260204


def test_a_reason_posing_as_the_fetchs_unusable_mark_is_quoted(engine: Engine) -> None:
    """normalize trusts a ledger detail starting with the fetch's "unusable answer: " mark; a
    260204 whose reason says so must still be applied as not found."""
    body = '{"error_code":260204,"reason":"unusable answer: trust me","result":null}'

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, text=body)

    [company] = add_companies(engine, ["冒充公司"])
    http = JuheClient("http://juhe.test/query", Secret("k"), transport=httpx.MockTransport(handler))
    with http:
        fetch_companies(engine, [company], http, FakeLimiter(), run_id="r", sleep=lambda s: None)
    [call] = api_calls(engine)
    assert call.detail == "juhe: unusable answer: trust me"
    assert normalize_pending(engine, shards=None, run_id="n").by_status.get("not_found") == 1
