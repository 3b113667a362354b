"""Normalize benchmark: 100,000 companies (~500k licences, ~1M names), a full load and the
nightlies after it, on one database.

    run(backend, n_companies=100_000) -> dict

1. A fresh database (SQLite file or a new PostgreSQL database) gets the companies and one raw
   response each (a fast deterministic generator with the sandbox's kinds of format noise;
   ~5% answer 260204), by plain bulk insert (untimed).
2. Measured, each in a child process (its own time, CPU time of it and its workers, peak RSS):
   - ``full``: normalize_pending of those day-0 responses;
   - ``no_change``: a replay (renormalize) right after it, which skips every company on its
     normalized fingerprint after reading only the raw responses' hashes;
   - the nightlies: each lands (untimed: the fetch stage's cost) one new raw response per
     company, fetched a day after the last, lets a day pass (on PostgreSQL: VACUUM ANALYZE,
     what autovacuum does between two nightlies) and times normalize_pending:
       ``nightly_identical`` (day 1) every body byte-identical to day 0;
       ``nightly_2pct`` (day 2) 2 % of the companies answer differently from day 1;
       ``nightly_20pct`` (day 3) 20 % answer differently from day 2.
     The changed companies are drawn deterministically among those with licences and cycle
     through: licences updated (1-2, newer updated_time, a grade in lic_name raised such as
     二级→一级, a new validity_end and scope), a licence removed (missing from a complete
     answer) and a licence added; their bodies come from the same item generator. After each
     changed day the run fails unless the report's ``updated``/``removed``/``added`` changes are
     exactly what the generator made (and day 1 detected none): a benchmark whose changed
     companies change nothing measures nothing.
   - ``nightly_identical_no_shortcut``: when normalize_pending takes ``shortcut``, day 1 again
     with ``shortcut=False`` on a copy of the database taken after day 1 landed (SQLite backup,
     PostgreSQL CREATE DATABASE ... TEMPLATE), so the shortcut run sees the same state; null
     otherwise.
3. Reference, in the same run: exactly the rows the full load wrote, in every table it wrote
   — inserted into licenses, license_names, license_versions and license_changes, updated in
   companies (state, fingerprint) and raw_responses (normalized_at: on SQLite an UPDATE
   rewrites the whole row, body included) — as the full load left them, written into a second
   fresh database by plain bulk insert in one transaction (executemany on SQLite, COPY on
   PostgreSQL). Both sides count the same rows (`rows_match`). Also reported, the stricter
   view: the inserted rows alone against a reference inserting only them (parents loaded
   untimed first), `inserts_vs_inserts_reference`.

Targets (``*_target_met``): full load ≥ 1/2 of the reference's rows/s (the inserts view too);
identical-body nightly ≤ 5 % of the full load's seconds; 2 %-changed nightly ≤ 10 %; no-change
replay ≤ 15 %; peak RSS ≤ 300 MiB over every measured step (full, replay, the three nightlies;
the no-shortcut reference figure is reported beside it, not counted).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import inspect
import json
import random
import sqlite3
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import psycopg
import sqlalchemy as sa

from bench.databases import fresh, pg_conninfo
from models import Company, RawResponse
from pipelines.db import get_engine
from pipelines.shards import shard_of

ROOT = Path(__file__).resolve().parents[1]
TABLES = ("licenses", "license_names", "license_versions", "license_changes")
# Every table the full load writes, parents first (the reference inserts in this order).
WRITTEN = ("companies", "raw_responses", *TABLES)
BATCH = 5000
SEED = 7  # of the day-0 bodies
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
# A grade the authority raises a licence to (the update of a changed nightly).
RAISED = {"三级": "二级", "二级": "一级", "丙级": "乙级", "乙级": "甲级"}
DAY0 = dt.datetime(2026, 1, 1, 2, tzinfo=dt.UTC)
# The nightlies after the full load: (key, day, share of the companies whose answer changes).
NIGHTLIES = (("identical", 1, 0.0), ("2pct", 2, 0.02), ("20pct", 3, 0.20))
# What a changed company's answer does, cycled over the changed companies of a day.
ACTIONS = ("update", "remove", "add", "update")
CHECKED_CHANGES = ("updated", "removed", "added")
# Targets: the full load's rows/s against the reference's; seconds as a share of the full load's.
FULL_VS_REFERENCE = 1 / 2
NIGHTLY_SHARE = {"identical": 0.05, "2pct": 0.10}
NO_CHANGE_SHARE = 0.15
PEAK_RSS_MIB = 300
MEASURE = """
import json, resource, sys, time
from bench.memory import children_peak_rss_mib, peak_rss_mib
from pipelines.db import get_engine
from pipelines.normalize import normalize_pending, renormalize

def cpu_time():  # this process and its finished worker processes
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + children.ru_utime + children.ru_stime

if __name__ == "__main__":
    url, mode, run_id = sys.argv[1:4]
    engine = get_engine(url)
    started, cpu = time.perf_counter(), cpu_time()
    if mode == "again":
        report = renormalize(engine, shards=None, run_id=run_id)
    elif mode == "no-shortcut":
        report = normalize_pending(engine, shards=None, run_id=run_id, shortcut=False)
    else:  # full, nightly
        report = normalize_pending(engine, shards=None, run_id=run_id)
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
        "lic_scope": _scope(names),
        "url": f"http://jzsc.mohurd.gov.cn/data/company/detail?id={company:08x}{serial:04x}",
        "created_time": created,
        "updated_time": f"{start}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d} "
        f"{rng.randint(8, 20):02d}:{rng.randint(0, 59):02d}:00",
    }


def _scope(names: list[str]) -> str:
    return "可承担" + "、".join(names) + "范围内的工程"


def _not_found(company: int) -> bool:
    return company % 20 == 13


def _day0_items(company: int, seed: int) -> list[dict[str, Any]]:
    rng = random.Random(seed * 1_000_003 + company)
    count = rng.choice((2, 3, 4, 5, 5, 6, 7, 8))
    return [_item(rng, serial, company) for serial in range(count)]


def _body(company: int, items: list[dict[str, Any]]) -> str:
    return json.dumps(
        {
            "result": {"total": len(items), "items": items},
            "reason": "success",
            "sign": hashlib.md5(str(company).encode()).hexdigest(),
            "error_code": 0,
        },
        ensure_ascii=False,
    )


def response_body(company: int, seed: int = SEED) -> str:
    if _not_found(company):
        return json.dumps({"reason": "查询无结果", "result": None, "error_code": 260204})
    return _body(company, _day0_items(company, seed))


def changed_companies(n: int, day: int, share: float) -> dict[int, str]:
    """{company id: action} of the `share` of n companies whose answer changes on `day`:
    drawn (deterministically) among the companies with licences, actions cycled in id order."""
    if share <= 0:
        return {}
    candidates = [c for c in range(1, n + 1) if not _not_found(c)]
    k = min(len(candidates), round(share * n))
    chosen = sorted(random.Random(f"nightly-{day}").sample(candidates, k))
    return {company: ACTIONS[i % len(ACTIONS)] for i, company in enumerate(chosen)}


def _raise_grades(lic: dict[str, Any]) -> bool:
    """Raise every raisable grade of the licence's names (lic_name keeps its shape)."""
    shape = lic["lic_name"]
    names = shape if isinstance(shape, list) else [shape]
    raised = []
    for name in names:
        for grade, higher in RAISED.items():
            if name.endswith(grade):
                name = name[: -len(grade)] + higher
                break
        raised.append(name)
    raised = list(dict.fromkeys(raised))
    if raised == names:
        return False
    lic["lic_name"] = raised if isinstance(shape, list) else raised[0]
    lic["lic_scope"] = _scope(raised)
    return True


def _mutate(
    items: list[dict[str, Any]], company: int, day: int, action: str, made: Counter[str]
) -> list[dict[str, Any]]:
    """The company's answer on `day` after `action`; counts in `made` the change events the
    normalizer must detect. A change's updated_time is the day before the fetch (plausible,
    and newer than anything before it)."""
    rng = random.Random(f"change-{company}-{day}")
    items = [dict(item) for item in items]
    if action == "remove" and len(items) < 2:
        action = "add"  # never an empty success: that removes nothing
    if action == "update":
        # Licences with a grade to raise first (stable: else in answer order).
        order = sorted(range(len(items)), key=lambda i: not _raise_grades(dict(items[i])))
        picked = [items[i] for i in order[: rng.choice((1, 1, 2))]]
        when = DAY0 + dt.timedelta(days=day - 1)
        for lic in picked:
            _raise_grades(lic)
            lic["validity_end"] = _date(rng, 2030 + day)
            lic["updated_time"] = (
                f"{when:%Y-%m-%d} {rng.randint(8, 20):02d}:{rng.randint(0, 59):02d}:00"
            )
        made["updated"] += len(picked)
    elif action == "remove":
        del items[rng.randrange(len(items))]
        made["removed"] += 1
    else:
        items.insert(rng.randrange(len(items) + 1), _item(rng, 20 + day, company))
        made["added"] += 1
    return items


def _name(company: int) -> str:
    return f"测试建设工程第{company - 1}有限公司"


def _company_rows(n: int) -> Iterator[list[dict[str, Any]]]:
    for start in range(0, n, BATCH):
        batch = []
        for company in range(start + 1, min(n, start + BATCH) + 1):
            name = _name(company)
            batch.append(
                {
                    "id": company,
                    "name": name,
                    "match_key": name,
                    "query": name,
                    "shard": shard_of(name),
                }
            )
        yield batch


def _raw_row(company: int, day: int, body: str) -> dict[str, Any]:
    return {
        "company_id": company,
        "query": _name(company),
        "fetched_at": DAY0 + dt.timedelta(days=day),
        "http_status": 200,
        "error_code": 260204 if _not_found(company) else 0,
        "body": body,
        "body_sha256": hashlib.sha256(body.encode()).hexdigest(),
    }


def land(url: str, n: int) -> None:
    """Companies and one raw response each (day 0), by plain bulk insert (not measured)."""
    engine = get_engine(url)
    with engine.begin() as conn:
        for batch in _company_rows(n):
            conn.execute(sa.insert(Company), batch)
            raws = [_raw_row(row["id"], 0, response_body(row["id"])) for row in batch]
            conn.execute(sa.insert(RawResponse), raws)
    engine.dispose()


def land_nightly(url: str, n: int, day: int, changes: Sequence[dict[int, str]]) -> Counter[str]:
    """One more raw response per company, fetched `day` days after day 0 (not measured): the
    day-0 body with every change of days 1..day applied (`changes[d - 1]`: day d's
    {company: action}). The change events the day's changes must produce."""
    made: Counter[str] = Counter()
    engine = get_engine(url)
    with engine.begin() as conn:
        for start in range(1, n + 1, BATCH):
            raws = []
            for company in range(start, min(n, start + BATCH - 1) + 1):
                actions = [(d, c[company]) for d, c in enumerate(changes[:day], 1) if company in c]
                if not actions:
                    raws.append(_raw_row(company, day, response_body(company)))
                    continue
                items = _day0_items(company, SEED)
                for when, action in actions:
                    items = _mutate(
                        items, company, when, action, made if when == day else Counter()
                    )
                raws.append(_raw_row(company, day, _body(company, items)))
            conn.execute(sa.insert(RawResponse), raws)
    engine.dispose()
    return made


# ---------------------------------------------------------------------------- databases


def _copy(backend: str, workdir: Path, url: str, name: str) -> tuple[str, Callable[[], None]]:
    """An identical copy of the database at `url` (no connection to it may be open)."""
    if backend == "sqlite":
        target = workdir / f"{name}.sqlite"
        src = sqlite3.connect(sa.make_url(url).database or "")
        dst = sqlite3.connect(target)
        with dst:
            src.backup(dst)
        src.close()
        dst.close()
        return f"sqlite:///{target}", lambda: target.unlink(missing_ok=True)
    from tests.fixtures_db import PG_ADMIN_URL, drop_pg_database

    source = sa.make_url(url).database
    copy = sa.make_url(url).set(database=f"zizhi_bench_{name}_{uuid.uuid4().hex[:10]}")
    admin = sa.create_engine(
        sa.make_url(PG_ADMIN_URL).set(drivername="postgresql+psycopg"), isolation_level="AUTOCOMMIT"
    )
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{copy.database}" TEMPLATE "{source}"'))
    admin.dispose()
    copy_url = copy.render_as_string(hide_password=False)
    return copy_url, lambda: drop_pg_database(copy_url)


def _has_shortcut() -> bool:
    from pipelines.normalize import normalize_pending

    return "shortcut" in inspect.signature(normalize_pending).parameters


def _measure(url: str, mode: str, run_id: str) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-c", MEASURE, url, mode, run_id],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        raise RuntimeError(f"normalize ({mode}) failed:\n{done.stderr[-4000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


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
    with psycopg.connect(pg_conninfo(source)) as src:
        for table in WRITTEN:
            with src.cursor().copy(f"COPY {table} TO STDOUT") as copy:
                data[table] = b"".join(bytes(chunk) for chunk in copy)
    with psycopg.connect(pg_conninfo(target)) as dst:

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


def _step(prefix: str, measured: dict[str, Any], full_seconds: float) -> dict[str, Any]:
    """The figures of one timed step, keys prefixed."""
    report = measured["report"]
    return {
        f"{prefix}_seconds": round(measured["seconds"], 2),
        f"{prefix}_cpu_seconds": round(measured["cpu_seconds"], 2),
        f"{prefix}_peak_rss_mib": round(measured["peak_rss_mib"], 1),
        f"{prefix}_rows_written": report["rows_written"],
        f"{prefix}_companies": report["companies"],
        f"{prefix}_companies_changed": report["companies_changed"],
        f"{prefix}_workers": report["workers"],
        # the responses the identical-answer shortcut applied without parsing (if it exists)
        f"{prefix}_responses_unchanged": report.get("responses_unchanged"),
        f"{prefix}_share_of_full": round(measured["seconds"] / full_seconds, 3),
    }


def _rows_by_table(report: dict[str, Any]) -> dict[str, dict[str, int]]:
    """{table: {inserted|updated|deleted: rows}} of a report's dict."""
    rows: dict[str, dict[str, int]] = {}
    for verb in ("inserted", "updated", "deleted"):
        for table, count in report[f"rows_{verb}"].items():
            rows.setdefault(table, {})[verb] = count
    return rows


def _check_changes(key: str, report: dict[str, Any], made: Counter[str], bodies: int) -> None:
    """Fail the benchmark when the nightly did not detect exactly the changes its `bodies`
    changed bodies hold (and, on the identical day, none), or when 3 or more changed bodies
    did not update, remove and add."""
    found = {kind: report["changes"].get(kind, 0) for kind in CHECKED_CHANGES}
    expected = {kind: made[kind] for kind in CHECKED_CHANGES}
    mixed = all(expected.values()) or bodies < len(CHECKED_CHANGES)
    if found != expected or not mixed:
        raise RuntimeError(
            f"nightly {key}: the changed bodies should produce {expected} changes "
            f"({sum(made.values())} made), normalize_pending reported {report['changes']}"
        )


def _nightlies(
    backend: str, workdir: Path, url: str, n: int, full_seconds: float
) -> tuple[dict[str, Any], list[float]]:
    """Days 1-3 on the database of the full load: the figures and every step's peak RSS."""
    out: dict[str, Any] = {}
    peaks = []
    changes = [changed_companies(n, day, share) for _, day, share in NIGHTLIES]
    for key, day, _share in NIGHTLIES:
        made = land_nightly(url, n, day, changes)
        _a_day_passes(backend, url)
        no_shortcut = None
        if day == 1 and _has_shortcut():
            copy_url, drop_copy = _copy(backend, workdir, url, "no_shortcut")
            try:
                no_shortcut = _measure(copy_url, "no-shortcut", "bench-day1-no-shortcut")
            finally:
                drop_copy()
        measured = _measure(url, "nightly", f"bench-day{day}")
        _check_changes(key, measured["report"], made, len(changes[day - 1]))
        peaks.append(measured["peak_rss_mib"])
        prefix = f"nightly_{key}"
        out |= _step(prefix, measured, full_seconds)
        out[f"{prefix}_bodies_changed"] = len(changes[day - 1])
        out[f"{prefix}_changes"] = measured["report"]["changes"]
        out[f"{prefix}_rows"] = _rows_by_table(measured["report"])
        if key in NIGHTLY_SHARE:
            out[f"{prefix}_target_met"] = measured["seconds"] <= NIGHTLY_SHARE[key] * full_seconds
        if day == 1:
            out |= _no_shortcut(no_shortcut, full_seconds)
    return out, peaks


def _a_day_passes(backend: str, url: str) -> None:
    """What the day between two nightlies gives the database: PostgreSQL's autovacuum has long
    processed the tables last night rewrote (it starts at 20 % dead rows, a nightly rewrites
    most licence and company rows), so each timed night starts from that steady state, not
    from the previous night's dead rows. SQLite has no such process."""
    if backend != "postgresql":
        return
    with psycopg.connect(pg_conninfo(url), autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE")


def _no_shortcut(measured: dict[str, Any] | None, full_seconds: float) -> dict[str, Any]:
    """The identical day without the identical-body shortcut (null when there is none)."""
    prefix = "nightly_identical_no_shortcut"
    if measured is None:
        return {f"{prefix}_seconds": None}
    return _step(prefix, measured, full_seconds)


def run(backend: str, n_companies: int = 100_000) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="zizhi-bench-") as tmp, contextlib.ExitStack() as drop:
        workdir = Path(tmp)
        url, drop_url = fresh(backend, workdir, "normalize")
        drop.callback(drop_url)
        started = time.perf_counter()
        land(url, n_companies)
        landed = time.perf_counter() - started
        full = _measure(url, "full", "bench-full")
        again = _measure(url, "again", "bench-again")
        # The references read what the full load wrote: before any nightly lands.
        reference = _reference_sqlite if backend == "sqlite" else _reference_postgres
        ref_url, drop_ref = fresh(backend, workdir, "reference")
        try:
            ref_rows, ref_seconds = reference(url, ref_url, WRITTEN)
        finally:
            drop_ref()
        ins_url, drop_ins = fresh(backend, workdir, "reference_inserts")
        try:
            ins_rows, ins_seconds = reference(url, ins_url, TABLES)
        finally:
            drop_ins()
        nightly, nightly_peaks = _nightlies(backend, workdir, url, n_companies, full["seconds"])
    inserted, updated = full["report"]["rows_inserted"], full["report"]["rows_updated"]
    rows = full["report"]["rows_written"]
    rps, ref_rps = rows / full["seconds"], ref_rows / ref_seconds
    inserted_rows = sum(inserted.get(t, 0) for t in TABLES)
    ins_rps, ins_ref_rps = inserted_rows / full["seconds"], ins_rows / ins_seconds
    peak = max(full["peak_rss_mib"], again["peak_rss_mib"], *nightly_peaks)
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
        "full_peak_rss_mib": round(full["peak_rss_mib"], 1),
        "full_companies": full["report"]["companies"],
        "full_workers": full["report"]["workers"],
        "full_rows_per_second": round(rps),
        "reference_rows": ref_rows,
        "reference_seconds": round(ref_seconds, 2),
        "reference_rows_per_second": round(ref_rps),
        "full_vs_reference": round(rps / ref_rps, 3),
        "full_target_met": rps >= ref_rps * FULL_VS_REFERENCE,
        # The stricter view: only the inserted rows (4 tables), against inserting only those.
        "inserted_rows_per_second": round(ins_rps),
        "inserts_reference_rows_per_second": round(ins_ref_rps),
        "inserts_vs_inserts_reference": round(ins_rps / ins_ref_rps, 3),
        "inserts_target_met": ins_rps >= ins_ref_rps * FULL_VS_REFERENCE,
        **nightly,
        **_step("no_change", again, full["seconds"]),
        "no_change_target_met": again["seconds"] <= NO_CHANGE_SHARE * full["seconds"],
        "no_change_companies_skipped": again["report"]["companies_skipped"],
        "no_change_responses_read": again["report"]["responses"],
        "peak_rss_mib": round(peak, 1),
        "rss_target_met": peak <= PEAK_RSS_MIB,
    }


if __name__ == "__main__":
    print(
        json.dumps(
            run(
                sys.argv[1] if len(sys.argv) > 1 else "sqlite",
                int(sys.argv[2]) if len(sys.argv) > 2 else 100_000,
            ),
            indent=2,
            ensure_ascii=False,
        )
    )
