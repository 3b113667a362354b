"""The documented ConLicByName protocol, over real HTTP with httpx."""

from __future__ import annotations

import json
import logging
import os
import socket
from collections.abc import Iterator

import httpx
import pytest

from juhe_sandbox.server import SandboxServer
from tests.fixtures_sandbox import SandboxFactory
from tests.sandbox.parsing import parse_item

FIELDS = {
    "category",
    "lic_no",
    "lic_name",
    "issue_org",
    "validity_start",
    "validity_end",
    "lic_scope",
    "url",
    "created_time",
    "updated_time",
}


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=5) as http:
        yield http


def _known(server: SandboxServer) -> str:
    return next(
        c.name
        for c in server.dataset.companies
        if c.known and all(lic.lic_name for lic in server.dataset.licenses(c, 0))
    )


def test_get_answers_every_documented_field(sandbox: SandboxServer, client: httpx.Client) -> None:
    name = _known(sandbox)
    response = client.get(sandbox.url, params={"key": "sandbox-key", "name": name})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"result", "reason", "sign", "error_code"}
    assert body["result"]["total"] == len(body["result"]["items"]) >= 1
    assert all(set(item) == FIELDS for item in body["result"]["items"])
    company = sandbox.dataset.lookup(name)
    assert company is not None
    assert [parse_item(i) for i in body["result"]["items"]] == sandbox.dataset.licenses(company, 0)


def test_post_form_and_php_path_answer_like_get(
    sandbox: SandboxServer, client: httpx.Client
) -> None:
    name = _known(sandbox)
    by_get = client.get(sandbox.url, params={"key": "sandbox-key", "name": name}).json()
    by_post = client.post(sandbox.url, data={"key": "sandbox-key", "name": name}).json()
    by_php = client.post(sandbox.url + ".php", data={"key": "sandbox-key", "name": name}).json()
    assert by_get == by_post == by_php


def test_uscc_and_registration_number_find_the_company(
    sandbox: SandboxServer, client: httpx.Client
) -> None:
    company = next(c for c in sandbox.dataset.companies if c.known and c.uscc and c.reg_no)
    answers = [
        client.post(sandbox.url, data={"key": "sandbox-key", "name": query}).json()
        for query in (company.name, company.uscc, company.reg_no)
    ]
    assert answers[0] == answers[1] == answers[2]
    assert str(answers[0]["error_code"]) == "0"


@pytest.mark.parametrize(
    ("params", "code"),
    [
        ({"key": "sandbox-key", "name": "没有这家建设有限公司"}, 260204),
        ({"key": "wrong-key", "name": "没有这家建设有限公司"}, 10001),
        ({"name": "没有这家建设有限公司"}, 10001),
        ({"key": "sandbox-key"}, 260201),
        ({"key": "sandbox-key", "name": "   "}, 260202),
        ({"key": "sandbox-key", "name": "建" * 201}, 260202),
    ],
)
def test_error_codes(
    sandbox: SandboxServer, client: httpx.Client, params: dict[str, str], code: int
) -> None:
    body = client.post(sandbox.url, data=params).json()
    assert int(body["error_code"]) == code
    assert body["result"] is None and body["reason"]


def test_unknown_roster_companies_answer_not_found(
    sandbox: SandboxServer, client: httpx.Client
) -> None:
    unknown = next(c for c in sandbox.dataset.companies if not c.known)
    body = client.get(sandbox.url, params={"key": "sandbox-key", "name": unknown.name}).json()
    assert int(body["error_code"]) == 260204


def test_error_code_is_sometimes_a_string(sandbox: SandboxServer, client: httpx.Client) -> None:
    codes = {
        type(
            client.get(sandbox.url, params={"key": "sandbox-key", "name": c.name}).json()[
                "error_code"
            ]
        )
        for c in sandbox.dataset.companies[:80]
    }
    assert codes == {int, str}


def test_the_key_is_never_echoed(sandbox_factory: SandboxFactory) -> None:
    server = sandbox_factory(api_key="s3cret-k3y")
    with httpx.Client(timeout=5) as http:
        for key in ("s3cret-k3y", "wrong"):
            answer = http.get(server.url, params={"key": key, "name": "x建设有限公司"})
            assert "s3cret" not in answer.text
        assert "s3cret" not in http.get(server.base_url + "/_sandbox/stats").text
        assert "s3cret" not in http.get(server.base_url + "/_sandbox/config").text
    assert "s3cret" not in repr(server.config) and "s3cret" not in json.dumps(server.stats())


def test_day_is_configurable_at_run_time(sandbox: SandboxServer, client: httpx.Client) -> None:
    event = next(
        e for day in range(1, 31) for e in sandbox.dataset.events(day) if e.kind == "update"
    )
    name = sandbox.dataset.companies[event.company_index].name
    params = {"key": "sandbox-key", "name": name}
    before = client.get(sandbox.url, params=params).json()
    changed = client.post(sandbox.base_url + "/_sandbox/config", json={"day": event.day})
    assert changed.status_code == 200 and changed.json()["day"] == event.day
    assert client.get(sandbox.url, params=params).json() == sandbox.dataset.response(
        name, event.day
    )
    assert client.get(sandbox.url, params=params).json() != before
    refused = client.post(sandbox.base_url + "/_sandbox/config", json={"seed": 3})
    assert refused.status_code == 400


def test_stats_endpoint_counts_what_clients_saw(
    sandbox: SandboxServer, client: httpx.Client
) -> None:
    found, missing = _known(sandbox), "没有这家建设有限公司"
    for name in (found, found, missing):
        client.get(sandbox.url, params={"key": "sandbox-key", "name": name})
    client.get(sandbox.url, params={"key": "nope", "name": missing})
    stats = client.get(sandbox.base_url + "/_sandbox/stats").json()
    assert stats["requests"] == 4
    assert stats["by_error_code"] == {"0": 2, "260204": 1, "10001": 1}
    assert stats["per_query"] == {found: 2, missing: 2}
    assert stats["billable"] == 2 and stats["quota_used"] == 3
    assert stats["first_request_at"] <= stats["last_request_at"]
    assert sandbox.stats()["by_error_code"] == {0: 2, 260204: 1, 10001: 1}
    reset = client.post(sandbox.base_url + "/_sandbox/reset").json()
    assert reset["requests"] == 0 and reset["per_query"] == {}


def test_environment_points_at_the_sandbox(sandbox: SandboxServer) -> None:
    assert os.environ["JUHE_BASE_URL"] == sandbox.url
    assert sandbox.url.endswith("/enterprise/App/ConLicByName/query")
    assert os.environ["JUHE_API_KEY"] == "sandbox-key"


def test_same_seed_servers_send_identical_bytes(sandbox_factory: SandboxFactory) -> None:
    first, second = sandbox_factory(seed=5, size=40), sandbox_factory(seed=5, size=40)
    with httpx.Client(timeout=5) as http:
        for company in first.dataset.companies:
            params = {"key": "sandbox-key", "name": company.name}
            assert (
                http.get(first.url, params=params).content
                == http.get(second.url, params=params).content
            )


def test_server_log_never_contains_the_key(
    sandbox_factory: SandboxFactory, caplog: pytest.LogCaptureFixture
) -> None:
    server = sandbox_factory(api_key="l0g-s3cret")
    caplog.set_level(logging.DEBUG, logger="juhe_sandbox")
    with httpx.Client(timeout=5) as http:
        http.get(server.url, params={"key": "l0g-s3cret", "name": "某建设有限公司"})
    with socket.create_connection(("127.0.0.1", int(server.base_url.rsplit(":", 1)[1]))) as raw:
        raw.sendall(b"GET /enterprise/App/ConLicByName/query?key=l0g-s3cret HTTP/9.9\r\n\r\n")
        assert b"505" in raw.recv(4096)
    assert "ConLicByName" in caplog.text
    assert "l0g-s3cret" not in caplog.text
