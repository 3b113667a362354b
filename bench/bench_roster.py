"""Roster benchmark: a 200,000-row CSV read, validated and stored, on SQLite and PostgreSQL.

    run(rows=200_000) -> {"sqlite": {...}, "postgresql": {...}}

1. One CSV is generated (`write_roster`: 90% name + valid USCC, 8% name only, 1% wrong check
   character, 1% blank or nameless).
2. Measured in a child process per backend (its peak RSS is its own, not the generator's), into
   a fresh database (a SQLite file, or a new PostgreSQL database): `load_roster`, the first
   `store_roster`, then a repeated `store_roster` of the same result, which must write nothing.
3. References, in the same run and the same child:
   - `csv_reference`: a plain `csv.reader` pass over the same file (the least any load does);
   - `insert_reference`: exactly the rows the first store wrote (companies and roster_rejects,
     read back as the driver returns them), inserted into a second fresh database by plain bulk
     insert in one transaction: executemany on SQLite, COPY on PostgreSQL;
   - `read_reference`: a plain SELECT of every stored company and reject fingerprint, the
     least an unchanged re-store reads to know that nothing changed.
   Each figure is printed beside its reference and as a ratio to it.

Targets (issue 13, point 5), stated in seconds for this project's 2-core machine, so the
booleans below only mean something on such a machine: load + first store ≤ 10 s, unchanged
re-store ≤ 1 s writing nothing, on both databases.
"""

from __future__ import annotations

import csv
import datetime as dt
import multiprocessing
import random
import sqlite3
import tempfile
import time
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from bench.databases import fresh, pg_conninfo
from bench.memory import peak_rss_mib
from pipelines.roster.identifiers import USCC_ALPHABET, uscc_check_character

ROWS = 200_000
LOAD_STORE_TARGET_S = 10.0
RESTORE_TARGET_S = 1.0
WRITTEN = ("companies", "roster_rejects")


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


# --- databases ----------------------------------------------------------------------------


# --- references ---------------------------------------------------------------------------


def _csv_reference(roster: str) -> tuple[int, float]:
    """Rows and seconds of a plain csv.reader pass over the file."""
    started = time.perf_counter()
    with open(roster, encoding="utf-8-sig", newline="") as file:
        rows = sum(1 for _ in csv.reader(file))
    return rows, time.perf_counter() - started


def _insert_reference_sqlite(source: str, target: str) -> tuple[int, float]:
    src = sqlite3.connect(sa.make_url(source).database or "")
    data = {t: src.execute(f"SELECT * FROM {t}").fetchall() for t in WRITTEN}
    src.close()
    dst = sqlite3.connect(sa.make_url(target).database or "", isolation_level=None)
    for pragma in ("foreign_keys=ON", "journal_mode=WAL", "synchronous=NORMAL"):
        dst.execute(f"PRAGMA {pragma}")
    started = time.perf_counter()
    dst.execute("BEGIN")
    for table in WRITTEN:
        if data[table]:
            marks = ", ".join("?" * len(data[table][0]))
            dst.executemany(f"INSERT INTO {table} VALUES ({marks})", data[table])
    dst.execute("COMMIT")
    seconds = time.perf_counter() - started
    dst.close()
    return sum(len(rows) for rows in data.values()), seconds


def _insert_reference_postgres(source: str, target: str) -> tuple[int, float]:
    import psycopg

    data: dict[str, bytes] = {}
    with psycopg.connect(pg_conninfo(source)) as src:
        for table in WRITTEN:
            with src.cursor().copy(f"COPY {table} TO STDOUT") as copy:
                data[table] = b"".join(bytes(chunk) for chunk in copy)
    with psycopg.connect(pg_conninfo(target)) as dst:
        started = time.perf_counter()
        for table in WRITTEN:
            with dst.cursor().copy(f"COPY {table} FROM STDIN") as copy:
                copy.write(data[table])
        dst.commit()
        seconds = time.perf_counter() - started
    return sum(chunk.count(b"\n") for chunk in data.values()), seconds


def _read_reference(url: str) -> float:
    """Seconds to SELECT every stored company's roster fields and every reject fingerprint."""
    from pipelines.db import get_engine

    started = time.perf_counter()
    with get_engine(url).connect() as conn:
        conn.exec_driver_sql(
            "SELECT match_key, name, query, roster_source, uscc, reg_no, active FROM companies"
        ).fetchall()
        conn.exec_driver_sql("SELECT fingerprint FROM roster_rejects").fetchall()
    return time.perf_counter() - started


# --- measuring ----------------------------------------------------------------------------


def _measure(roster: str, url: str, reference_url: str, backend: str) -> dict[str, Any]:
    from pipelines.db import get_engine
    from pipelines.roster import load_roster, store_roster

    engine = get_engine(url)
    now = dt.datetime.now(dt.UTC)
    csv_rows, csv_seconds = _csv_reference(roster)

    cpu_started = time.process_time()
    started = time.perf_counter()
    result = load_roster(roster)
    loaded, cpu_loaded = time.perf_counter(), time.process_time()
    first = store_roster(engine, result, now=now)
    stored, cpu_stored = time.perf_counter(), time.process_time()
    again = store_roster(engine, result, now=now + dt.timedelta(hours=1))
    restored, cpu_restored = time.perf_counter(), time.process_time()
    rss_mib = peak_rss_mib()

    reference = _insert_reference_sqlite if backend == "sqlite" else _insert_reference_postgres
    written_rows, insert_seconds = reference(url, reference_url)
    read_seconds = _read_reference(url)

    load_s, store_s, restore_s = loaded - started, stored - loaded, restored - stored
    total_s = stored - started
    restore_writes = again.inserted + again.updated + again.deactivated + again.new_rejects
    return {
        "backend": backend,
        "rows": result.stats["total_rows"],
        "accepted": first.accepted,
        "rejected": first.rejected,
        "inserted": first.inserted,
        "new_rejects": first.new_rejects,
        "load_seconds": round(load_s, 2),
        "csv_reference_rows": csv_rows,
        "csv_reference_seconds": round(csv_seconds, 2),
        "load_vs_csv_reference": round(load_s / csv_seconds, 1),
        "store_seconds": round(store_s, 2),
        "insert_reference_rows": written_rows,
        "insert_reference_seconds": round(insert_seconds, 2),
        "store_vs_insert_reference": round(store_s / insert_seconds, 1),
        "load_store_seconds": round(total_s, 2),
        "load_store_rows_per_second": round(result.stats["total_rows"] / total_s),
        "restore_seconds": round(restore_s, 2),
        "read_reference_seconds": round(read_seconds, 2),
        "restore_vs_read_reference": round(restore_s / read_seconds, 1),
        "restore_writes": restore_writes,
        # CPU time is steadier than wall time on a shared machine.
        "load_cpu_seconds": round(cpu_loaded - cpu_started, 2),
        "store_cpu_seconds": round(cpu_stored - cpu_loaded, 2),
        "restore_cpu_seconds": round(cpu_restored - cpu_stored, 2),
        "peak_rss_mib": round(rss_mib, 1),
        "load_store_target_met": total_s <= LOAD_STORE_TARGET_S,
        "restore_target_met": restore_s <= RESTORE_TARGET_S and restore_writes == 0,
    }


def _run_backend(backend: str, roster: Path, workdir: Path) -> dict[str, Any]:
    url, drop = fresh(backend, workdir, "roster")
    reference_url, drop_reference = fresh(backend, workdir, "roster_reference")
    try:
        context = multiprocessing.get_context("spawn")
        with context.Pool(1) as pool:
            figures: dict[str, Any] = pool.apply(
                _measure, (str(roster), url, reference_url, backend)
            )
    finally:
        drop()
        drop_reference()
    return figures


def run(rows: int = ROWS) -> dict[str, Any]:
    from bench.__main__ import postgres_available

    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="zizhi-bench-roster-") as tmp:
        workdir = Path(tmp)
        roster = workdir / "roster.csv"
        write_roster(roster, rows)
        results["roster_mib"] = round(roster.stat().st_size / (1024 * 1024), 1)
        results["sqlite"] = _run_backend("sqlite", roster, workdir)
        if postgres_available():
            results["postgresql"] = _run_backend("postgresql", roster, workdir)
        else:
            results["postgresql"] = "SKIPPED: no PostgreSQL server reachable"
    return results


if __name__ == "__main__":
    import json
    import sys

    print(json.dumps(run(int(sys.argv[1]) if len(sys.argv) > 1 else ROWS), indent=2))
