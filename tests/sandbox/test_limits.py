"""QPS window, quota, maintenance, latency and every fault kind, as a client experiences them."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from juhe_sandbox.server import SandboxServer
from tests.fixtures_sandbox import SandboxFactory


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    limits = httpx.Limits(max_connections=50, max_keepalive_connections=50)
    with httpx.Client(timeout=5, limits=limits) as http:
        yield http


def _ask(client: httpx.Client, server: SandboxServer, name: str | None = None) -> httpx.Response:
    name = name or server.dataset.companies[0].name
    return client.post(server.url, data={"key": server.config.api_key, "name": name})


def _burst(client: httpx.Client, server: SandboxServer, count: int) -> list[int]:
    """`count` requests released together from as many threads; their error codes."""
    gate = threading.Barrier(count)

    def one(_: int) -> int:
        gate.wait()
        return int(_ask(client, server).json()["error_code"])

    with ThreadPoolExecutor(count) as pool:
        return list(pool.map(one, range(count)))


def test_a_burst_above_the_limit_is_throttled(
    sandbox_factory: SandboxFactory, client: httpx.Client
) -> None:
    server = sandbox_factory(qps_limit=5)
    codes = _burst(client, server, 20)
    stats = server.stats()
    assert codes.count(10011) == stats["violations"] >= 1
    assert stats["max_in_window"] <= 5
    assert stats["by_error_code"][10011] == stats["violations"]
    assert stats["quota_used"] == codes.count(0)


def test_a_burst_at_the_limit_passes(sandbox_factory: SandboxFactory, client: httpx.Client) -> None:
    server = sandbox_factory(qps_limit=8)
    assert 10011 not in _burst(client, server, 8)
    assert server.stats()["violations"] == 0 and server.stats()["max_in_window"] == 8


def test_requests_spread_below_the_limit_pass(
    sandbox_factory: SandboxFactory, client: httpx.Client
) -> None:
    server = sandbox_factory(qps_limit=6)
    codes = []
    for _ in range(7):  # three per second: half the limit
        codes.append(int(_ask(client, server).json()["error_code"]))
        time.sleep(0.33)
    assert 10011 not in codes
    assert server.stats()["violations"] == 0


def test_window_slides_so_throttled_clients_recover(
    sandbox_factory: SandboxFactory, client: httpx.Client
) -> None:
    server = sandbox_factory(qps_limit=2)
    assert [int(_ask(client, server).json()["error_code"]) for _ in range(3)][-1] == 10011
    time.sleep(1.05)
    assert int(_ask(client, server).json()["error_code"]) == 0


def test_quota_stops_after_n_accepted_requests(
    sandbox_factory: SandboxFactory, client: httpx.Client
) -> None:
    server = sandbox_factory(daily_quota=3)
    codes = [int(_ask(client, server).json()["error_code"]) for _ in range(5)]
    assert codes == [0, 0, 0, 10012, 10012]
    server.reset_stats()
    assert int(_ask(client, server).json()["error_code"]) == 0


def test_maintenance_answers_10020_until_switched_off(
    sandbox: SandboxServer, client: httpx.Client
) -> None:
    sandbox.configure(maintenance=True)
    assert int(_ask(client, sandbox).json()["error_code"]) == 10020
    sandbox.configure(maintenance=False)
    assert int(_ask(client, sandbox).json()["error_code"]) == 0


def test_latency_keeps_many_requests_in_flight(
    sandbox_factory: SandboxFactory, client: httpx.Client
) -> None:
    server = sandbox_factory(latency_ms=300)
    names = [c.name for c in server.dataset.companies[:40]]
    with ThreadPoolExecutor(40) as pool:
        answers = list(pool.map(lambda n: _ask(client, server, n), names))
    assert all(a.status_code == 200 for a in answers)
    assert server.stats()["max_in_flight"] >= 20


@pytest.mark.parametrize("code", ["260200", "10014"])
def test_transient_error_codes(
    sandbox_factory: SandboxFactory, client: httpx.Client, code: str
) -> None:
    server = sandbox_factory(faults={code: 1.0})
    assert str(_ask(client, server).json()["error_code"]) == code
    assert server.stats()["faults"] == {code: 1}


def test_http_502_sends_an_html_page(sandbox_factory: SandboxFactory, client: httpx.Client) -> None:
    server = sandbox_factory(faults={"http502": 1.0})
    answer = _ask(client, server)
    assert answer.status_code == 502 and answer.headers["content-type"].startswith("text/html")
    assert "Bad Gateway" in answer.text


def test_truncated_json_does_not_parse(
    sandbox_factory: SandboxFactory, client: httpx.Client
) -> None:
    server = sandbox_factory(faults={"truncated": 1.0})
    answer = _ask(client, server)
    assert answer.status_code == 200
    with pytest.raises(json.JSONDecodeError):
        json.loads(answer.content)
    assert server.stats()["billable"] == 0


def test_dropped_connection_raises_a_transport_error(
    sandbox_factory: SandboxFactory, client: httpx.Client
) -> None:
    server = sandbox_factory(faults={"drop": 1.0})
    with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
        _ask(client, server)
    server.configure(faults={})
    assert _ask(client, server).status_code == 200  # the client reconnects


def test_slow_answers_exceed_a_short_read_timeout(sandbox_factory: SandboxFactory) -> None:
    server = sandbox_factory(faults={"slow": 1.0}, slow_seconds=3.0)
    with httpx.Client(timeout=httpx.Timeout(5, read=0.3)) as http, pytest.raises(httpx.ReadTimeout):
        _ask(http, server)


def test_partial_answers_total_more_than_items(
    sandbox_factory: SandboxFactory, client: httpx.Client
) -> None:
    server = sandbox_factory(faults={"partial": 1.0})
    company = next(c for c in server.dataset.companies if len(server.dataset.licenses(c, 0)) >= 2)
    result = _ask(client, server, company.name).json()["result"]
    assert result["total"] == len(result["items"]) + 1


def test_fault_mix_is_counted_and_repeatable(
    sandbox_factory: SandboxFactory, client: httpx.Client
) -> None:
    faults = {"http502": 0.2, "260200": 0.2}
    runs = []
    for _ in range(2):
        server = sandbox_factory(faults=faults, fault_seed=9)
        statuses = [
            (a.status_code, a.json()["error_code"] if a.status_code == 200 else None)
            for a in (_ask(client, server) for _ in range(40))
        ]
        stats = server.stats()
        assert stats["faults"].get("http502", 0) == sum(s == 502 for s, _ in statuses)
        assert stats["faults"].get("260200", 0) == sum(c == 260200 for _, c in statuses)
        runs.append(statuses)
    assert runs[0] == runs[1] and {s for s, _ in runs[0]} == {200, 502}


def test_invalid_fault_settings_are_refused(sandbox: SandboxServer) -> None:
    with pytest.raises(ValueError):
        sandbox.configure(faults={"meteor": 0.1})
    with pytest.raises(ValueError):
        sandbox.configure(faults={"drop": 0.7, "slow": 0.7})
