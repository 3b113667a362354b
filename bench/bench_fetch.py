"""Fetch benchmark: how much of juhe's rate limit fetch_companies uses, and never more.

A sandbox with `latency_ms` median latency and `qps_limit=qps` serves `n` companies, fetched
through `fetch_companies` (shared SQLite limiter, default concurrency) into a temporary SQLite
database, in two conditions measured in the same run:

* **clean**: no network jitter, an idle CPU (target: >= 95 % of the limit, 0 violations);
* **jitter + hog**: a one-way network delay before the sandbox stamps each arrival (lognormal,
  median 20 ms, p99 120 ms) while two busy-loop processes compete for the CPU (target: 0
  violations, >= 88 % of the limit).

Figures: achieved calls/s and its share of the limit, the sandbox's violation count and busiest
1-second window, the grant→send delay the limiter measured (what send-time stamps absorb), beside
a naive client (sequential httpx calls, no limiter) measured in the same run on a small sample.

    python -m bench.bench_fetch [n] [repeats]
"""

from __future__ import annotations

import statistics
import sys
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
from tests.juhe.helpers import cpu_hog, sandbox_companies

NAIVE_SAMPLE = 60
JITTER = {"net_delay_ms": 20.0, "net_delay_p99_ms": 120.0}


def _naive_rate(sandbox: SandboxServer, names: list[str]) -> float:
    """Calls/s of one-at-a-time requests without any limiter."""
    started = time.perf_counter()
    with httpx.Client(timeout=15) as client:
        for name in names:
            client.post(sandbox.url, data={"key": sandbox.config.api_key, "name": name})
    return len(names) / (time.perf_counter() - started)


def fetch_once(
    n: int, latency_ms: float, qps: float, *, jitter: bool, naive: bool = False
) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as folder:
        url = f"sqlite:///{Path(folder) / 'bench.sqlite'}"
        upgrade(url)
        engine = get_engine(url)
        config = SandboxConfig(
            size=n, latency_ms=latency_ms, qps_limit=qps, **(JITTER if jitter else {})
        )
        with SandboxServer(config) as sandbox:
            companies = sandbox_companies(engine, sandbox, n)
            limiter = SharedRateLimiter.for_database(url, qps)
            with limiter, JuheClient(sandbox.url, Secret(sandbox.config.api_key)) as client:
                report = fetch_companies(engine, companies, client, limiter, run_id="bench")
            stats = sandbox.stats()
            naive_rate = None
            if naive:
                sandbox.reset_stats()
                naive_rate = _naive_rate(sandbox, [c.query for c in companies[:NAIVE_SAMPLE]])
        engine.dispose()
    lags = sorted(limiter.send_lags) or [0.0]
    return {
        "fetched": report.landed_ok + report.not_found,
        "calls": report.calls,
        "elapsed_s": round(report.elapsed, 1),
        "achieved_rate": round(report.achieved_rate, 2),
        "share_of_limit": round(report.achieved_rate / qps, 3),
        "violations": stats["violations"],
        "max_in_window": stats["max_in_window"],
        "send_lag_ms_p50": round(1000 * statistics.median(lags), 1),
        "send_lag_ms_max": round(1000 * lags[-1], 1),
        "naive_rate": None if naive_rate is None else round(naive_rate, 2),
    }


def run(n: int = 2000, latency_ms: float = 300, qps: float = 20, repeats: int = 1) -> dict:
    clean = fetch_once(n, latency_ms, qps, jitter=False, naive=True)
    loaded = []
    with cpu_hog():
        for _ in range(repeats):
            loaded.append(fetch_once(n, latency_ms, qps, jitter=True))
    naive = clean.pop("naive_rate")
    return {
        "companies": n,
        "latency_ms": latency_ms,
        "qps_limit": qps,
        "concurrency": default_concurrency(qps),
        "clean": clean,
        "jitter_and_hog": {
            "repeats": repeats,
            "violations": [r["violations"] for r in loaded],
            "share_of_limit": [r["share_of_limit"] for r in loaded],
            "max_in_window": max(r["max_in_window"] for r in loaded),
            "send_lag_ms_max": max(r["send_lag_ms_max"] for r in loaded),
            "send_lag_ms_p50": statistics.median(r["send_lag_ms_p50"] for r in loaded),
        },
        "naive_sample": NAIVE_SAMPLE,
        "naive_rate": naive,
        "speedup_vs_naive": round(clean["achieved_rate"] / naive, 1),
    }


if __name__ == "__main__":
    args = [int(a) for a in sys.argv[1:]]
    print(run(*args[:1], repeats=args[1] if len(args) > 1 else 1))
