"""The identical-answer shortcut (normalize/settled) writes exactly what the full path writes.

Every scenario lands the same raw responses into two databases and normalizes one with the
shortcut and one without (``shortcut=False`` parses everything); their tables, fingerprints and
change counts must be equal, day after day, on both backends. The scenarios are built so that
every guard of the shortcut matters: a mutation that skips one must make them differ
(`test_a_shortcut_without_its_guards_gives_other_tables`).
"""

from __future__ import annotations

import copy
import datetime as dt
import hashlib
import json
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from juhe_sandbox.dataset import Dataset
from models import Company, License, RawResponse
from models.tables import ApiCall
from pipelines.db import get_engine, upgrade
from pipelines.juhe.errors import UNUSABLE_DETAIL_PREFIX
from pipelines.normalize import fingerprint, normalize_pending, renormalize, settled, writer
from pipelines.normalize.report import NormalizeReport
from pipelines.shards import shard_of
from tests.fixtures_db import create_pg_database, drop_pg_database, is_postgres
from tests.normalize import add_raw, body, day, digest, item, make_company, raw_row

T1, T2 = "2025-01-01 10:00:00", "2025-02-01 09:30:00"


@pytest.fixture
def other_engine(migrated_template: str, tmp_path: Path) -> Iterator[Engine]:
    """A second empty database at head, beside `engine`, for the no-shortcut side."""
    if is_postgres():
        url = create_pg_database("zizhi_fullpath")
        upgrade(url)
        yield get_engine(url)
        get_engine(url).dispose()
        drop_pg_database(url)
        return
    target = tmp_path / "fullpath.sqlite"
    shutil.copyfile(sa.make_url(migrated_template).database or "", target)
    yield get_engine(f"sqlite:///{target}")
    get_engine(f"sqlite:///{target}").dispose()


def state(engine: Engine) -> dict[str, Any]:
    """`digest` plus the fingerprints and every licence's presence (all contract columns)."""
    comp = Company.__table__.c
    with engine.connect() as conn:
        fps = conn.execute(
            sa.select(
                comp.match_key, comp.normalized_fingerprint, comp.settled_fingerprint
            ).order_by(comp.match_key)
        ).all()
        pending = conn.execute(
            sa.select(sa.func.count()).where(RawResponse.normalized_at.is_(None))
        ).scalar_one()
    return {"tables": digest(engine), "fingerprints": [tuple(r) for r in fps], "pending": pending}


def land_refused(engine: Engine, company_id: int, payload: dict, fetched_at: dt.datetime) -> None:
    """A body the fetch refused as unusable (its ledger row says so), as the fetch lands it."""
    with engine.begin() as conn:
        call = conn.execute(
            sa.insert(ApiCall)
            .values(
                company_id=company_id,
                called_at=fetched_at,
                attempt=1,
                http_status=200,
                outcome="invalid",
                detail=UNUSABLE_DETAIL_PREFIX + "over the size cap",
                run_id="test",
            )
            .returning(ApiCall.id)
        ).scalar_one()
        row = raw_row(company_id, payload, fetched_at) | {"api_call_id": call}
        conn.execute(sa.insert(RawResponse).values(row))


Landing = Callable[[Engine, int], None]  # lands one day's raw responses into a database


def run_both(
    shortcut_engine: Engine, full_engine: Engine, days: int, land: Landing
) -> list[NormalizeReport]:
    """Land each day into both databases, normalize one with and one without the shortcut,
    and require equal state after every day; returns the shortcut side's reports."""
    reports = []
    for n in range(days):
        land(shortcut_engine, n)
        land(full_engine, n)
        fast = normalize_pending(shortcut_engine, shards=None, run_id=f"day-{n}", chunk_size=16)
        slow = normalize_pending(
            full_engine, shards=None, run_id=f"day-{n}", chunk_size=16, shortcut=False
        )
        assert slow.responses_unchanged == 0
        assert fast.responses == slow.responses, f"responses differ on day {n}"
        assert fast.changes == slow.changes, f"changes differ on day {n}"
        assert len(fast.anomalies) == len(slow.anomalies), f"anomalies differ on day {n}"
        fast_state, slow_state = state(shortcut_engine), state(full_engine)
        assert fast_state["tables"] == slow_state["tables"], f"tables differ on day {n}"
        assert fast_state == slow_state, f"fingerprints differ on day {n}"
        reports.append(fast)
    return reports


def sandbox_world(size: int, seed: int = 11) -> tuple[Dataset, Landing]:
    """The sandbox's evolving world (updates, removals, restorations, stale and reordered
    answers, anomalies), plus the cases the shortcut must refuse or handle: a second identical
    answer the same day, a late answer fetched before the newest one, a refused identical
    body, the same partial answer two days running (the last item missing, total kept) and the
    same invalid answer two days running."""
    dataset = Dataset(seed=seed, size=size)

    def answer(i: int, name: str, n: int) -> dict[str, Any] | str:
        payload = dataset.response(name, n)
        if i % 17 == 8 and n in (1, 2) and isinstance(payload.get("result"), dict):
            partial = copy.deepcopy(payload)
            partial["result"]["items"] = partial["result"]["items"][:-1]
            return partial
        if i % 19 == 9 and n in (3, 4):
            return '{"error_code": 0, "reason": "success", "result": "暂无"}'
        return payload

    def land(engine: Engine, n: int) -> None:
        if n == 0:
            with engine.begin() as conn:
                for c in dataset.companies:
                    conn.execute(
                        sa.insert(Company).values(
                            name=c.name, match_key=c.name, query=c.name, shard=shard_of(c.name)
                        )
                    )
        with engine.connect() as conn:
            ids = dict(conn.execute(sa.select(Company.name, Company.id)).tuples().all())
        rows = []
        for i, c in enumerate(dataset.companies):
            rows.append(raw_row(ids[c.name], answer(i, c.name, n), day(n)))
            if i % 7 == 3:  # fetched twice today: two identical pending answers
                rows.append(raw_row(ids[c.name], dataset.response(c.name, n), day(n, hour=14)))
            if i % 11 == 5 and n >= 2:  # yesterday's answer again, landing a day late
                rows.append(raw_row(ids[c.name], dataset.response(c.name, n - 2), day(n - 1, 1)))
        with engine.begin() as conn:
            conn.execute(sa.insert(RawResponse), rows)
        for i, c in enumerate(dataset.companies):
            if i % 13 == 6 and n % 3 == 2:  # today's answer again, refused at fetch
                land_refused(engine, ids[c.name], dataset.response(c.name, n), day(n, hour=20))

    return dataset, land


@pytest.mark.slow
def test_the_shortcut_writes_what_the_full_path_writes_day_after_day(
    engine: Engine, other_engine: Engine
) -> None:
    _, land = sandbox_world(size=120)
    reports = run_both(engine, other_engine, days=10, land=land)
    first, later = reports[0], reports[1:]
    assert first.responses_unchanged == 0  # nothing is settled before the first load
    unchanged = sum(r.responses_unchanged for r in later)
    parsed = sum(r.responses - r.responses_unchanged for r in later)
    assert unchanged > parsed > 0  # most answers took the shortcut, the rest the full path
    assert sum(r.changes["removed"] + r.changes["restored"] for r in later) > 0
    # A replay and a rebuild from raw give the same tables again.
    before = state(engine)
    renormalize(engine, shards=None, run_id="replay")
    assert state(engine) == before
    renormalize(engine, shards=None, run_id="rebuild", rebuild=True)
    assert state(engine)["tables"] == before["tables"]


def _unguarded(own: list[settled.PendingRow]) -> settled.Shortcut | None:
    """The mutation: every company that was ever normalized takes the shortcut."""
    first = own[0]
    if first.normalized_fingerprint is None:
        return None
    folded = first.normalized_fingerprint
    for row in own:
        folded = fingerprint.step(folded, row.body_sha256)
    return settled.Shortcut(
        first.shard,
        first.company_id,
        own[-1].fetched_at,
        first.normalized_fingerprint,
        folded,
        tuple(row.raw_id for row in own),
    )


@pytest.mark.slow
@pytest.mark.parametrize("mutation", ["no guards", "everything settles"])
def test_a_shortcut_without_its_guards_gives_other_tables(
    engine: Engine, other_engine: Engine, monkeypatch: pytest.MonkeyPatch, mutation: str
) -> None:
    if mutation == "no guards":
        monkeypatch.setattr(settled, "shortcut", _unguarded)
    else:
        monkeypatch.setattr(writer, "settles", lambda company, response: True)
    _, land = sandbox_world(size=60)
    with pytest.raises(AssertionError, match=r"(tables|changes|anomalies) differ"):
        run_both(engine, other_engine, days=6, land=land)


# ------------------------------------------------------------------ one rule per test


def normalize(engine: Engine, run_id: str, **kw: Any) -> NormalizeReport:
    return normalize_pending(engine, shards=[0], run_id=run_id, **kw)


def licences(engine: Engine) -> dict[str, tuple[dt.datetime, dt.datetime | None]]:
    with engine.connect() as conn:
        rows = conn.execute(sa.select(License.lic_no, License.last_seen_at, License.removed_at))
        return {lic_no: (seen, removed) for lic_no, seen, removed in rows}


def company_row(engine: Engine, company: int) -> Any:
    with engine.connect() as conn:
        return conn.execute(sa.select(Company).where(Company.id == company)).mappings().one()


def test_an_identical_answer_moves_presence_only_without_parsing(engine: Engine) -> None:
    company = make_company(engine)
    add_raw(engine, company, body([item("A", T1), item("B", T1)]), day(0))
    normalize(engine, "day-0")
    add_raw(engine, company, body([item("A", T1)]), day(1))  # B removed on day 1
    normalize(engine, "day-1")
    answer = body([item("A", T1)])
    answer_sha = hashlib.sha256(json.dumps(answer, ensure_ascii=False).encode()).hexdigest()
    assert company_row(engine, company)["settled_fingerprint"] == fingerprint.settled(answer_sha)

    add_raw(engine, company, answer, day(2))
    report = normalize(engine, "day-2")
    assert report.responses == report.responses_unchanged == 1 and not report.changes
    assert report.by_status == {}  # not parsed
    assert licences(engine) == {"A": (day(2), None), "B": (day(0), day(1))}
    row = company_row(engine, company)
    assert row["last_response_at"] == day(2) and row["license_count"] == 1
    with engine.connect() as conn:
        hashes = conn.execute(
            sa.select(RawResponse.body_sha256).order_by(RawResponse.fetched_at, RawResponse.id)
        ).scalars()
        assert row["normalized_fingerprint"] == fingerprint.fold(hashes)


def test_an_identical_not_found_answer_takes_the_shortcut(engine: Engine) -> None:
    company = make_company(engine)
    add_raw(engine, company, body([item("A", T1)]), day(0))
    add_raw(engine, company, body(error_code=260204), day(1))
    normalize(engine, "days-0-1")
    add_raw(engine, company, body(error_code=260204), day(2))
    report = normalize(engine, "day-2")
    assert report.responses_unchanged == 1
    assert licences(engine) == {"A": (day(0), day(1))}
    assert company_row(engine, company)["last_response_at"] == day(2)


@pytest.mark.parametrize(
    "case",
    [
        "changed body",
        "fetched before the newest",
        "refused at fetch",
        "anomaly when settled",
        "partial answer",
        "parser version changed",
    ],
)
def test_answers_the_shortcut_must_not_take(
    engine: Engine, other_engine: Engine, monkeypatch: pytest.MonkeyPatch, case: str
) -> None:
    """Each case is landed into both databases; the shortcut side must parse the answer (no
    response unchanged) and leave what the full path leaves."""
    first = [item("A", T1), item("B", T1)]
    answer = body(first)

    def land(db: Engine, n: int) -> None:
        if n == 0:
            company = make_company(db)
            add_raw(db, company, body(first), day(0))
            if case == "anomaly when settled":  # same updated_time, other content
                add_raw(db, company, body([item("A", T1, lic_scope="另"), item("B", T1)]), day(1))
            if case == "partial answer":  # lists A of two: B stays current, unseen
                add_raw(db, company, body([item("A", T1)], total=2), day(1))
            return
        company = 1
        if case == "changed body":
            add_raw(db, company, body([item("A", T2, lic_scope="新"), item("B", T1)]), day(2))
        elif case == "fetched before the newest":
            add_raw(db, company, answer, day(0, hour=1))
        elif case == "refused at fetch":
            land_refused(db, company, answer, day(2))
        elif case == "anomaly when settled":
            add_raw(db, company, body([item("A", T1, lic_scope="另"), item("B", T1)]), day(2))
        elif case == "partial answer":
            add_raw(db, company, body([item("A", T1)], total=2), day(2))
        else:
            add_raw(db, company, answer, day(2))

    if case == "parser version changed":
        original = fingerprint.PARSER_VERSION
        land(engine, 0), land(other_engine, 0)
        normalize(engine, "first"), normalize(other_engine, "first")
        monkeypatch.setattr(fingerprint, "PARSER_VERSION", original + "-next")
        reports = run_both(engine, other_engine, days=1, land=lambda db, n: land(db, 1))
        assert reports[0].responses_unchanged == 0
        return
    reports = run_both(engine, other_engine, days=2, land=land)
    assert reports[1].responses_unchanged == 0 and reports[1].responses >= 1


def test_two_identical_answers_in_one_run_take_the_newest_time(
    engine: Engine, other_engine: Engine
) -> None:
    answer = body([item("A", T1)])

    def land(db: Engine, n: int) -> None:
        if n == 0:
            make_company(db)
            add_raw(db, 1, answer, day(0))
        else:
            add_raw(db, 1, answer, day(1))
            add_raw(db, 1, answer, day(1, hour=15))

    reports = run_both(engine, other_engine, days=2, land=land)
    assert reports[1].responses_unchanged == 2
    assert licences(engine)["A"] == (day(1, hour=15), None)


def test_a_candidate_another_run_applied_after_the_plan_is_not_applied_twice(
    engine: Engine, other_engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Between the plan (no lock) and the shortcut's transaction another run normalizes the
    candidate: the guards see it moved, nothing is written twice, the full path re-reads."""
    answer = body([item("A", T1), item("B", T1)])
    apply = settled._apply

    def another_run_then_apply(conn: Any, found: Any, *args: Any) -> bool:
        assert [company for _, company, _ in found.shortcuts] == [1]  # it was a candidate
        other = normalize_pending(engine, shards=None, run_id="other", shortcut=False)
        assert other.responses == 1
        return apply(conn, found, *args)

    for n in range(2):
        for db in (engine, other_engine):
            if n == 0:
                make_company(db)
            add_raw(db, 1, answer, day(n))
        if n == 1:
            monkeypatch.setattr(settled, "_apply", another_run_then_apply)
        fast = normalize(engine, f"day-{n}")
        normalize(other_engine, f"day-{n}", shortcut=False)
        assert state(engine) == state(other_engine)
    assert fast.responses == fast.responses_unchanged == 0


def test_an_answer_landing_after_the_plan_waits_for_the_next_run(
    engine: Engine, other_engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An answer landing between the plan and the write is left pending (as with the full
    path, which plans once too); the next run applies it, and the tables agree again."""
    answer = body([item("A", T1), item("B", T1)])
    changed = body([item("A", T1)])  # B removed
    apply = settled._apply

    def land_then_apply(conn: Any, found: Any, *args: Any) -> bool:
        add_raw(engine, 1, changed, day(1, hour=9))
        return apply(conn, found, *args)

    for db in (engine, other_engine):
        make_company(db)
        add_raw(db, 1, answer, day(0))
        normalize(db, "day-0")
        add_raw(db, 1, answer, day(1))
    monkeypatch.setattr(settled, "_apply", land_then_apply)
    assert normalize(engine, "day-1").responses_unchanged == 1
    monkeypatch.undo()
    add_raw(other_engine, 1, changed, day(1, hour=9))
    normalize(other_engine, "day-1", shortcut=False)
    late = normalize(engine, "day-1-late")
    assert late.responses == 1 and late.changes["removed"] == 1
    assert state(engine) == state(other_engine)


def test_the_first_normalization_after_the_upgrade_settles_companies(engine: Engine) -> None:
    """Migration 0005 leaves settled_fingerprint NULL: the next run parses once, then settles."""
    company = make_company(engine)
    answer = body([item("A", T1)])
    add_raw(engine, company, answer, day(0))
    normalize(engine, "day-0")
    with engine.begin() as conn:
        conn.execute(sa.update(Company).values(settled_fingerprint=None))
    add_raw(engine, company, answer, day(1))
    assert normalize(engine, "day-1").responses_unchanged == 0
    add_raw(engine, company, answer, day(2))
    assert normalize(engine, "day-2").responses_unchanged == 1
    assert licences(engine)["A"] == (day(2), None)


def test_a_rebuild_settles_again(engine: Engine) -> None:
    company = make_company(engine)
    answer = body([item("A", T1)])
    add_raw(engine, company, answer, day(0))
    normalize(engine, "day-0")
    settled_fp = company_row(engine, company)["settled_fingerprint"]
    assert settled_fp is not None
    renormalize(engine, shards=[0], run_id="rebuild", rebuild=True)
    assert company_row(engine, company)["settled_fingerprint"] == settled_fp
