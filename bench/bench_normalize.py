"""Normalize benchmark: 100,000 companies (~500k licences, ~1M names) of raw responses.

    run(backend, n_companies=100_000) -> dict

1. A fresh database (SQLite file or a new PostgreSQL database) gets the companies and one raw
   response each (a fast deterministic generator with the sandbox's kinds of format noise;
   ~5% answer 260204), by plain bulk insert.
2. Measured, each in a child process (its own peak RSS): the full normalize_pending, then a
   no-change renormalize of everything (which skips every company on its normalized
   fingerprint after reading only the raw responses' hashes).
3. Reference, in the same run: exactly the rows the full load wrote, in every table it wrote
   — inserted into licenses, license_names, license_versions and license_changes, updated in
   companies (state, fingerprint) and raw_responses (normalized_at: on SQLite an UPDATE
   rewrites the whole row, body included) — as the full load left them, written into a second
   fresh database by plain bulk insert in one transaction (executemany on SQLite, COPY on
   PostgreSQL). Both sides count the same rows (`rows_match`). Also reported, the stricter
   view: the inserted rows alone against a reference inserting only them (parents loaded
   untimed first), `inserts_vs_inserts_reference`.

Targets: full load ≥ 1/3 of the reference's rows/s; no-change re-run ≤ 15 % of the full load's
time; peak RSS ≤ 600 MB.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import random
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import sqlalchemy as sa

from models import Company, RawResponse
from pipelines.db import get_engine, upgrade
from pipelines.shards import shard_of

ROOT = Path(__file__).resolve().parents[1]
TABLES = ("licenses", "license_names", "license_versions", "license_changes")
# Every table the full load writes, parents first (the reference inserts in this order).
WRITTEN = ("companies", "raw_responses", *TABLES)
BATCH = 5000
CATEGORIES = (
    "建筑业企业资质",
    "工程设计资质",
    "建筑-勘察资质",
    "工程监理资质",
    "工程造价咨询企业资质",
)
WORKS = (
    "建筑工程",
    "市政公用工程",
    "水利水电工程",
    "公路工程",
    "机电工程",
    "电力工程",
    "钢结构工程",
    "地基基础工程",
    "建筑装修装饰工程",
    "环保工程",
    "消防设施工程",
    "城市及道路照明工程",
)
KINDS = ("施工总承包", "专业承包", "设计", "勘察专业")
GRADES = ("特级", "一级", "二级", "三级", "甲级", "乙级", "丙级", "不分等级", "壹级", "甲（Ⅰ）级")
ORGS = (
    "河南省住房和城乡建设厅",
    "中华人民共和国住房和城乡建设部",
    "广东省住房和城乡建设厅",
    "郑州市城乡建设局",
    "上海市住房和城乡建设管理委员会",
)
MEASURE = """
import json, resource, sys, time
from bench.memory import children_peak_rss_mib, peak_rss_mib
from pipelines.db import get_engine
from pipelines.normalize import normalize_pending, renormalize

def cpu_time():  # this process and its finished worker processes
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + children.ru_utime + children.ru_stime

if __name__ == "__main__":
    engine = get_engine(sys.argv[1])
    started, cpu = time.perf_counter(), cpu_time()
    if sys.argv[2] == "full":
        report = normalize_pending(engine, shards=None, run_id="bench-full")
    else:
        report = renormalize(engine, shards=None, run_id="bench-again")
    seconds, cpu = time.perf_counter() - started, cpu_time() - cpu
    # Workers run side by side: their sum is at most workers x the largest worker's peak.
    workers = report.workers if report.workers > 1 else 0
    rss = peak_rss_mib() + workers * children_peak_rss_mib()
    print(json.dumps({"seconds": seconds, "cpu_seconds": cpu, "report": report.as_dict(),
                      "peak_rss_mib": rss}))
"""


# ---------------------------------------------------------------------------- data


def _date(rng: random.Random, year: int) -> str:
    y, m, d = year, rng.randint(1, 12), rng.randint(1, 28)
    roll = rng.random()
    if roll < 0.75:
        return f"{y:04d}-{m:02d}-{d:02d}"
    if roll < 0.83:
        return f"{y:04d}/{m:02d}/{d:02d}"
    if roll < 0.90:
        return f"{y:04d}{m:02d}{d:02d}"
    midnight = dt.datetime(y, m, d, tzinfo=dt.timezone(dt.timedelta(hours=8)))
    return str(int(midnight.timestamp() * 1000))


def _item(rng: random.Random, serial: int, company: int) -> dict[str, Any]:
    category = CATEGORIES[serial % len(CATEGORIES)]
    names = list(
        dict.fromkeys(
            f"{rng.choice(WORKS)}{rng.choice(KINDS)}{rng.choice(GRADES)}"
            for _ in range(rng.choice((1, 2, 2, 3)))
        )
    )
    start = rng.randint(2015, 2024)
    created = f"{start - 1}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"
    return {
        "category": category,
        "lic_no": f"D{company:07d}{serial:02d}",
        "lic_name": names if len(names) > 1 or rng.random() < 0.9 else names[0],
        "issue_org": rng.choice(ORGS),
        "validity_start": _date(rng, start),
        "validity_end": "长期" if rng.random() < 0.05 else _date(rng, start + 5),
        "lic_scope": "可承担" + "、".join(names) + "范围内的工程",
        "url": f"http://jzsc.mohurd.gov.cn/data/company/detail?id={company:08x}{serial:04x}",
        "created_time": created,
        "updated_time": f"{start}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d} "
        f"{rng.randint(8, 20):02d}:{rng.randint(0, 59):02d}:00",
    }


def response_body(company: int, seed: int = 7) -> str:
    rng = random.Random(seed * 1_000_003 + company)
    if company % 20 == 13:
        return json.dumps({"reason": "查询无结果", "result": None, "error_code": 260204})
    count = rng.choice((2, 3, 4, 5, 5, 6, 7, 8))
    items = [_item(rng, serial, company) for serial in range(count)]
    return json.dumps(
        {
            "result": {"total": count, "items": items},
            "reason": "success",
            "sign": hashlib.md5(str(company).encode()).hexdigest(),
            "error_code": 0,
        },
        ensure_ascii=False,
    )


def _company_rows(n: int) -> Iterator[list[dict[str, Any]]]:
    for start in range(0, n, BATCH):
        batch = []
        for i in range(start, min(n, start + BATCH)):
            name = f"测试建设工程第{i}有限公司"
            batch.append(
                {
                    "id": i + 1,
                    "name": name,
                    "match_key": name,
                    "query": name,
                    "shard": shard_of(name),
                }
            )
        yield batch


def land(url: str, n: int) -> None:
    """Companies and one raw response each, by plain bulk insert (not measured)."""
    engine = get_engine(url)
    fetched = dt.datetime(2026, 1, 1, 2, tzinfo=dt.UTC)
    with engine.begin() as conn:
        for batch in _company_rows(n):
            conn.execute(sa.insert(Company), batch)
            raws = []
            for row in batch:
                body = response_body(row["id"])
                raws.append(
                    {
                        "company_id": row["id"],
                        "query": row["query"],
                        "fetched_at": fetched,
                        "http_status": 200,
                        "error_code": 260204 if row["id"] % 20 == 13 else 0,
                        "body": body,
                        "body_sha256": hashlib.sha256(body.encode()).hexdigest(),
                    }
                )
            conn.execute(sa.insert(RawResponse), raws)
    engine.dispose()


# ---------------------------------------------------------------------------- databases


def _fresh(backend: str, workdir: Path, name: str) -> tuple[str, Callable[[], None]]:
    if backend == "sqlite":
        url = f"sqlite:///{workdir / name}.sqlite"
        upgrade(url)
        return url, lambda: get_engine(url).dispose()
    from tests.fixtures_db import create_pg_database, drop_pg_database

    url = create_pg_database(f"zizhi_bench_{name}")
    upgrade(url)
    return url, lambda: drop_pg_database(url)


def _measure(url: str, mode: str) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-c", MEASURE, url, mode],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def _pg_conninfo(url: str) -> str:
    return sa.make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def _reference_sqlite(source: str, target: str, timed: tuple[str, ...]) -> tuple[int, float]:
    """Read the written rows as the driver returns them; insert the untimed tables first, then
    time one executemany transaction of the `timed` ones."""
    src = sqlite3.connect(sa.make_url(source).database or "")
    data = {t: src.execute(f"SELECT * FROM {t}").fetchall() for t in WRITTEN}
    src.close()
    dst = sqlite3.connect(sa.make_url(target).database or "", isolation_level=None)
    for pragma in ("foreign_keys=ON", "journal_mode=WAL", "synchronous=NORMAL"):
        dst.execute(f"PRAGMA {pragma}")

    def insert(tables: list[str]) -> None:
        dst.execute("BEGIN")
        for table in tables:
            rows = data[table]
            if rows:
                marks = ", ".join("?" * len(rows[0]))
                dst.executemany(f"INSERT INTO {table} VALUES ({marks})", rows)
        dst.execute("COMMIT")

    insert([t for t in WRITTEN if t not in timed])
    started = time.perf_counter()
    insert([t for t in WRITTEN if t in timed])
    seconds = time.perf_counter() - started
    dst.close()
    return sum(len(data[t]) for t in timed), seconds


def _reference_postgres(source: str, target: str, timed: tuple[str, ...]) -> tuple[int, float]:
    """COPY the written rows out (text format, in memory); COPY the untimed tables in first,
    then time COPY of the `timed` ones, one transaction."""
    data: dict[str, bytes] = {}
    with psycopg.connect(_pg_conninfo(source)) as src:
        for table in WRITTEN:
            with src.cursor().copy(f"COPY {table} TO STDOUT") as copy:
                data[table] = b"".join(bytes(chunk) for chunk in copy)
    with psycopg.connect(_pg_conninfo(target)) as dst:

        def copy_in(tables: list[str]) -> None:
            for table in tables:
                with dst.cursor().copy(f"COPY {table} FROM STDIN") as copy:
                    copy.write(data[table])
            dst.commit()

        copy_in([t for t in WRITTEN if t not in timed])
        started = time.perf_counter()
        copy_in([t for t in WRITTEN if t in timed])
        seconds = time.perf_counter() - started
    return sum(data[t].count(b"\n") for t in timed), seconds


# ---------------------------------------------------------------------------- run


def run(backend: str, n_companies: int = 100_000) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="zizhi-bench-") as tmp:
        workdir = Path(tmp)
        url, drop = _fresh(backend, workdir, "normalize")
        ref_url, drop_ref = _fresh(backend, workdir, "reference")
        ins_url, drop_ins = _fresh(backend, workdir, "reference_inserts")
        try:
            started = time.perf_counter()
            land(url, n_companies)
            landed = time.perf_counter() - started
            full = _measure(url, "full")
            again = _measure(url, "again")
            reference = _reference_sqlite if backend == "sqlite" else _reference_postgres
            ref_rows, ref_seconds = reference(url, ref_url, WRITTEN)
            ins_rows, ins_seconds = reference(url, ins_url, TABLES)
        finally:
            drop()
            drop_ref()
            drop_ins()
    inserted, updated = full["report"]["rows_inserted"], full["report"]["rows_updated"]
    rows = full["report"]["rows_written"]
    rps, ref_rps = rows / full["seconds"], ref_rows / ref_seconds
    inserted_rows = sum(inserted.get(t, 0) for t in TABLES)
    ins_rps, ins_ref_rps = inserted_rows / full["seconds"], ins_rows / ins_seconds
    return {
        "backend": backend,
        "companies": n_companies,
        "land_seconds": round(landed, 1),
        "rows_inserted": {t: inserted.get(t, 0) for t in TABLES},
        "rows_updated": {t: updated.get(t, 0) for t in WRITTEN if updated.get(t)},
        "rows_written": rows,
        "rows_match": rows == ref_rows,
        "full_seconds": round(full["seconds"], 2),
        "full_cpu_seconds": round(full["cpu_seconds"], 2),
        "full_workers": full["report"]["workers"],
        "full_rows_per_second": round(rps),
        "reference_rows": ref_rows,
        "reference_seconds": round(ref_seconds, 2),
        "reference_rows_per_second": round(ref_rps),
        "full_vs_reference": round(rps / ref_rps, 3),
        "full_target_met": rps >= ref_rps / 3,
        # The stricter view: only the inserted rows (4 tables), against inserting only those.
        "inserted_rows_per_second": round(ins_rps),
        "inserts_reference_rows_per_second": round(ins_ref_rps),
        "inserts_vs_inserts_reference": round(ins_rps / ins_ref_rps, 3),
        "inserts_target_met": ins_rps >= ins_ref_rps / 3,
        "no_change_seconds": round(again["seconds"], 2),
        "no_change_cpu_seconds": round(again["cpu_seconds"], 2),
        "no_change_share_of_full": round(again["seconds"] / full["seconds"], 3),
        "no_change_target_met": again["seconds"] <= 0.15 * full["seconds"],
        "no_change_rows_written": again["report"]["rows_written"],
        "no_change_companies_skipped": again["report"]["companies_skipped"],
        "no_change_responses_read": again["report"]["responses"],
        "full_peak_rss_mib": round(full["peak_rss_mib"], 1),
        "no_change_peak_rss_mib": round(again["peak_rss_mib"], 1),
        "peak_rss_mib": round(max(full["peak_rss_mib"], again["peak_rss_mib"]), 1),
        "rss_target_met": max(full["peak_rss_mib"], again["peak_rss_mib"]) <= 600,
    }


if __name__ == "__main__":
    print(
        json.dumps(
            run(
                sys.argv[1] if len(sys.argv) > 1 else "sqlite",
                int(sys.argv[2]) if len(sys.argv) > 2 else 100_000,
            ),
            indent=2,
        )
    )
