"""Fetch benchmark: how much of juhe's rate limit fetch_companies uses, and never more.

A sandbox with `latency_ms` median latency and `qps_limit=qps` serves `n` companies, fetched
through `fetch_companies` (shared SQLite limiter, default concurrency) into a temporary SQLite
database. Figures: achieved calls/s and its share of the limit (target >= 95 %), the sandbox's
violation count (target 0) and its busiest 1-second window, beside a naive client (sequential
httpx calls, no limiter) measured in the same run on a small sample.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from juhe_sandbox.server import SandboxConfig, SandboxServer
from pipelines.db import get_engine, upgrade
from pipelines.juhe.client import JuheClient
from pipelines.juhe.fetcher import default_concurrency, fetch_companies
from pipelines.juhe.ratelimit import SharedRateLimiter
from pipelines.settings import Secret
from tests.juhe.helpers import sandbox_companies

NAIVE_SAMPLE = 60


def _naive_rate(sandbox: SandboxServer, names: list[str]) -> float:
    """Calls/s of one-at-a-time requests without any limiter."""
    started = time.perf_counter()
    with httpx.Client(timeout=15) as client:
        for name in names:
            client.post(sandbox.url, data={"key": sandbox.config.api_key, "name": name})
    return len(names) / (time.perf_counter() - started)


def run(n: int = 2000, latency_ms: float = 300, qps: float = 20) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as folder:
        url = f"sqlite:///{Path(folder) / 'bench.sqlite'}"
        upgrade(url)
        engine = get_engine(url)
        config = SandboxConfig(size=n, latency_ms=latency_ms, qps_limit=qps)
        with SandboxServer(config) as sandbox:
            companies = sandbox_companies(engine, sandbox, n)
            limiter = SharedRateLimiter.for_database(url, qps)
            with limiter, JuheClient(sandbox.url, Secret(sandbox.config.api_key)) as client:
                report = fetch_companies(engine, companies, client, limiter, run_id="bench")
            stats = sandbox.stats()
            sandbox.reset_stats()
            naive = _naive_rate(sandbox, [c.query for c in companies[:NAIVE_SAMPLE]])
        engine.dispose()
    return {
        "companies": n,
        "latency_ms": latency_ms,
        "qps_limit": qps,
        "concurrency": default_concurrency(qps),
        "fetched": report.landed_ok + report.not_found,
        "calls": report.calls,
        "elapsed_s": round(report.elapsed, 1),
        "achieved_rate": round(report.achieved_rate, 2),
        "share_of_limit": round(report.achieved_rate / qps, 3),
        "violations": stats["violations"],
        "max_in_window": stats["max_in_window"],
        "naive_sample": NAIVE_SAMPLE,
        "naive_rate": round(naive, 2),
        "speedup_vs_naive": round(report.achieved_rate / naive, 1),
    }


if __name__ == "__main__":
    print(run())
