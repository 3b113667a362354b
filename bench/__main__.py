"""`make bench`: every benchmark, each beside a reference measured in the same run.

    python -m bench                 # all
    python -m bench fetch normalize # some: roster, fetch, normalize, dagster
Set BENCH_NORMALIZE_COMPANIES to shrink the normalize benchmark while developing.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable
from typing import Any

from tests.fixtures_db import PG_ADMIN_URL


def postgres_available() -> bool:
    try:
        import psycopg

        psycopg.connect(PG_ADMIN_URL, connect_timeout=3).close()
        return True
    except Exception:
        return False


def _normalize(backend: str) -> Callable[[], dict[str, Any]]:
    def run() -> dict[str, Any]:
        from bench import bench_normalize

        n = int(os.environ.get("BENCH_NORMALIZE_COMPANIES") or 100_000)
        return bench_normalize.run(backend, n_companies=n)

    return run


def _benchmarks() -> dict[str, Callable[[], dict[str, Any]]]:
    from bench import bench_dagster, bench_fetch, bench_roster

    benches: dict[str, Callable[[], dict[str, Any]]] = {
        "roster": bench_roster.run,
        "fetch": bench_fetch.run,
        "normalize-sqlite": _normalize("sqlite"),
    }
    if postgres_available():
        benches["normalize-postgresql"] = _normalize("postgresql")
    else:
        print("SKIPPED normalize-postgresql: no PostgreSQL server reachable", file=sys.stderr)
    benches["dagster"] = bench_dagster.run
    return benches


def main(argv: list[str]) -> int:
    benches = _benchmarks()
    chosen = [name for name in benches if not argv or any(name.startswith(a) for a in argv)]
    for name in chosen:
        print(f"\n== {name} ==", flush=True)
        started = time.perf_counter()
        result = benches[name]()
        print(json.dumps(result, indent=2, ensure_ascii=False, default=str))
        print(f"({time.perf_counter() - started:.0f} s)", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
