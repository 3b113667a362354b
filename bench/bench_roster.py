"""Roster benchmark: a 200,000-row CSV read, validated and stored into a fresh SQLite database.

The measured work runs in a child process so its peak RSS is its own, not the generator's.
Figures: wall and CPU seconds and rows/s for load_roster and the first store_roster, seconds
for a repeated store_roster (which must write nothing), and the peak RSS.
"""

from __future__ import annotations

import csv
import datetime as dt
import multiprocessing
import random
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.memory import peak_rss_mib
from pipelines.roster.identifiers import USCC_ALPHABET, uscc_check_character

ROWS = 200_000


def _uscc(rng: random.Random) -> str:
    body = (
        "91"
        + "".join(rng.choice("0123456789") for _ in range(6))
        + "".join(rng.choice(USCC_ALPHABET) for _ in range(9))
    )
    return body + (uscc_check_character(body) or "0")


def write_roster(path: Path, rows: int = ROWS, seed: int = 7) -> None:
    """90% name + valid USCC, 8% name only, 1% wrong check character, 1% blank or nameless."""
    rng = random.Random(seed)
    with path.open("w", encoding="utf-8-sig", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(["序号", "企业名称", "统一社会信用代码", "地址"])
        for i in range(rows):
            name = f"{rng.choice('京沪粤浙苏闽川鄂')}测试建筑工程第{i}有限公司"
            roll = rng.random()
            if roll < 0.90:
                writer.writerow([i, name, _uscc(rng), "某省某市某区某路1号"])
            elif roll < 0.98:
                writer.writerow([i, name, "", ""])
            elif roll < 0.99:
                bad = _uscc(rng)
                writer.writerow([i, name, bad[:17] + ("1" if bad[17] != "1" else "2"), ""])
            else:
                writer.writerow([i, "", "", "地址而已"])


def _measure(roster: str, url: str) -> dict[str, Any]:
    from pipelines.db import get_engine, upgrade
    from pipelines.roster import load_roster, store_roster

    upgrade(url)
    engine = get_engine(url)
    now = dt.datetime.now(dt.UTC)
    cpu_started = time.process_time()
    started = time.perf_counter()
    result = load_roster(roster)
    loaded, cpu_loaded = time.perf_counter(), time.process_time()
    first = store_roster(engine, result, now=now)
    stored, cpu_stored = time.perf_counter(), time.process_time()
    again = store_roster(engine, result, now=now)
    restored = time.perf_counter()
    rss_mib = peak_rss_mib()
    return {
        "rows": result.stats["total_rows"],
        "accepted": first.accepted,
        "rejected": first.rejected,
        "inserted": first.inserted,
        "load_seconds": round(loaded - started, 2),
        "store_seconds": round(stored - loaded, 2),
        "restore_seconds": round(restored - stored, 2),
        "restore_writes": again.inserted + again.updated + again.new_rejects,
        "total_seconds": round(stored - started, 2),
        # CPU time is steadier than wall time on a shared machine.
        "load_cpu_seconds": round(cpu_loaded - cpu_started, 2),
        "store_cpu_seconds": round(cpu_stored - cpu_loaded, 2),
        "rows_per_second": round(result.stats["total_rows"] / (stored - started)),
        "peak_rss_mib": round(rss_mib, 1),
    }


def run(rows: int = ROWS) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="zizhi-bench-roster-") as tmp:
        roster = Path(tmp) / "roster.csv"
        write_roster(roster, rows)
        url = f"sqlite:///{Path(tmp) / 'bench.sqlite'}"
        context = multiprocessing.get_context("spawn")
        with context.Pool(1) as pool:
            figures = pool.apply(_measure, (str(roster), url))
        figures["roster_mib"] = round(roster.stat().st_size / (1024 * 1024), 1)
        return figures


if __name__ == "__main__":
    print(run())
