"""Storing rosters in real SQLite / PostgreSQL: inserts, idempotence, drop and return, rejects."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from models.tables import Company, RosterReject
from pipelines.roster.identifiers import match_key
from pipelines.roster.store import store_roster
from pipelines.roster.validate import RosterResult, load_roster
from pipelines.shards import shard_of
from tests.roster import HEADER, write_csv

T0 = dt.datetime(2026, 1, 5, 2, 0, tzinfo=dt.UTC)
T1 = T0 + dt.timedelta(days=1)
USCC_A = "91110000600037341L"
USCC_B = "91350100M000100Y43"
ROSTER = [
    HEADER,
    ["北京建工集团有限责任公司", USCC_A, ""],
    ["中铁（天津）建设有限公司", "", "110108000000016"],
    ["", USCC_B, ""],
    ["坏公司", "91110000600037341N", ""],
    [],
    ["甲'); DROP TABLE companies;--", "", ""],
    ["🏗️ 乙建设有限公司", "", ""],
]


def roster(tmp_path: Path, rows: list[list[Any]], name: str = "roster.csv") -> RosterResult:
    return load_roster(write_csv(tmp_path / name, rows))


def companies(engine: Engine) -> dict[str, dict[str, Any]]:
    with engine.connect() as conn:
        rows = conn.execute(sa.select(Company.__table__)).mappings().all()
    return {row["match_key"]: dict(row) for row in rows}


def reject_rows(engine: Engine) -> list[tuple[str, int | None, str]]:
    with engine.connect() as conn:
        query = sa.select(RosterReject.source, RosterReject.row_number, RosterReject.reason)
        return [tuple(r) for r in conn.execute(query.order_by(RosterReject.id))]  # type: ignore[misc]


def test_first_store_inserts_companies_and_rejects(engine: Engine, tmp_path: Path) -> None:
    report = store_roster(engine, roster(tmp_path, ROSTER), now=T0)
    assert (report.total_rows, report.accepted, report.rejected) == (7, 5, 2)
    assert (report.inserted, report.updated, report.reactivated, report.deactivated) == (5, 0, 0, 0)
    assert report.new_rejects == 2
    assert report.reasons == {"uscc_check": 1, "empty_row": 1}
    stored = companies(engine)
    tianjin = stored[match_key("中铁(天津)建设有限公司")]
    assert tianjin["name"] == tianjin["query"] == "中铁（天津）建设有限公司"
    assert (tianjin["reg_no"], tianjin["uscc"], tianjin["roster_source"]) == (
        "110108000000016",
        None,
        "roster.csv",
    )
    assert (tianjin["fetch_status"], tianjin["active"]) == ("pending", True)
    assert tianjin["created_at"] == tianjin["updated_at"] == T0
    assert stored[USCC_A]["query"] == USCC_A
    assert stored[USCC_A]["name"] == "北京建工集团有限责任公司"
    assert stored[USCC_B]["name"] == USCC_B
    assert "甲'); DROP TABLE companies;--" in {c["name"] for c in stored.values()}
    assert "🏗️ 乙建设有限公司" in {c["query"] for c in stored.values()}
    assert report.shards_touched == {c["shard"] for c in stored.values()}
    assert all(c["shard"] == shard_of(key) for key, c in stored.items())
    assert reject_rows(engine) == [
        (
            "roster.csv",
            5,
            "统一社会信用代码 91110000600037341N has a wrong check character (expected L)",
        ),
        ("roster.csv", 6, "empty row"),
    ]


def test_storing_the_same_roster_again_changes_nothing(engine: Engine, tmp_path: Path) -> None:
    store_roster(engine, roster(tmp_path, ROSTER), now=T0)
    before, rejects_before = companies(engine), reject_rows(engine)
    report = store_roster(engine, roster(tmp_path, ROSTER), now=T1)
    assert (report.inserted, report.updated, report.reactivated, report.deactivated) == (0, 0, 0, 0)
    assert report.new_rejects == 0 and report.shards_touched == frozenset()
    assert companies(engine) == before
    assert reject_rows(engine) == rejects_before


def test_dropped_company_is_deactivated_and_comes_back(engine: Engine, tmp_path: Path) -> None:
    store_roster(engine, roster(tmp_path, ROSTER), now=T0)
    without_a = [row for row in ROSTER if USCC_A not in row]
    report = store_roster(engine, roster(tmp_path, without_a), now=T1)
    assert report.deactivated == 1 and report.complete
    assert report.deactivation_note == "1 companies no longer on the roster were deactivated"
    dropped = companies(engine)[USCC_A]
    assert dropped["active"] is False and dropped["updated_at"] == T1

    report = store_roster(engine, roster(tmp_path, ROSTER), now=T1 + dt.timedelta(hours=1))
    assert (report.inserted, report.updated, report.reactivated) == (0, 1, 1)
    assert report.shards_touched == {shard_of(USCC_A)}
    back = companies(engine)[USCC_A]
    assert back["active"] is True and back["id"] == dropped["id"]


def test_incomplete_roster_deactivates_nothing(engine: Engine, tmp_path: Path) -> None:
    folder = tmp_path / "roster"
    folder.mkdir()
    write_csv(folder / "a.csv", ROSTER)
    store_roster(engine, load_roster(folder), now=T0)
    write_csv(folder / "a.csv", [HEADER, ["丙公司", "", ""]])
    (folder / "b.csv").write_bytes(b"")
    report = store_roster(engine, load_roster(folder), now=T1)
    assert not report.complete and report.deactivated == 0
    assert report.deactivation_note == "roster not read completely: no company was deactivated"
    assert report.inserted == 1
    assert all(c["active"] for c in companies(engine).values())
    assert ("b.csv", None, "b.csv: is empty (0 bytes)") in reject_rows(engine)


def test_roster_without_any_usable_company_deactivates_nothing(
    engine: Engine, tmp_path: Path
) -> None:
    store_roster(engine, roster(tmp_path, ROSTER), now=T0)
    report = store_roster(engine, roster(tmp_path, [HEADER, ["", "123", ""]]), now=T1)
    assert report.complete and report.deactivated == 0
    assert all(c["active"] for c in companies(engine).values())


def test_update_keeps_fetch_state(engine: Engine, tmp_path: Path) -> None:
    store_roster(engine, roster(tmp_path, ROSTER), now=T0)
    with engine.begin() as conn:
        conn.execute(
            sa.update(Company)
            .where(Company.match_key == USCC_A)
            .values(fetch_status="ok", last_fetched_at=T0, license_count=3, last_error_code=None)
        )
    renamed = [[*row] for row in ROSTER]
    renamed[1][0] = "北京建工集团有限责任公司（改名）"
    report = store_roster(engine, roster(tmp_path, renamed, "new.csv"), now=T1)
    assert (report.inserted, report.updated) == (0, 5)  # the name and the source changed
    company = companies(engine)[USCC_A]
    assert company["name"] == "北京建工集团有限责任公司（改名）"
    assert company["roster_source"] == "new.csv" and company["updated_at"] == T1
    assert (company["fetch_status"], company["last_fetched_at"], company["license_count"]) == (
        "ok",
        T0,
        3,
    )


def test_company_known_by_name_gains_its_uscc(engine: Engine, tmp_path: Path) -> None:
    store_roster(engine, roster(tmp_path, [HEADER, ["丁建设有限公司", "", ""]]), now=T0)
    before = companies(engine)[match_key("丁建设有限公司")]
    report = store_roster(
        engine, roster(tmp_path, [HEADER, ["丁建设有限公司", USCC_B, ""]]), now=T1
    )
    assert (report.rekeyed, report.inserted, report.updated, report.deactivated) == (1, 0, 1, 0)
    after = companies(engine)
    assert list(after) == [USCC_B]
    assert after[USCC_B]["id"] == before["id"]
    assert (after[USCC_B]["uscc"], after[USCC_B]["query"], after[USCC_B]["shard"]) == (
        USCC_B,
        USCC_B,
        shard_of(USCC_B),
    )


def test_a_blank_cell_never_erases_a_known_identifier(engine: Engine, tmp_path: Path) -> None:
    store_roster(engine, roster(tmp_path, [HEADER, ["戊公司", "", "110108000000016"]]), now=T0)
    key = match_key("戊公司")
    with engine.begin() as conn:  # e.g. learnt elsewhere
        conn.execute(sa.update(Company).where(Company.match_key == key).values(uscc=USCC_B))
    report = store_roster(engine, roster(tmp_path, [HEADER, ["戊公司", "", ""]], "b.csv"), now=T1)
    assert report.updated == 1
    company = companies(engine)[key]
    assert (company["uscc"], company["reg_no"], company["roster_source"]) == (
        USCC_B,
        "110108000000016",
        "b.csv",
    )


def test_thousands_of_rows_cross_chunk_boundaries(engine: Engine, tmp_path: Path) -> None:
    rows = [
        HEADER,
        *([f"测试建设第{i}有限公司", "", ""] for i in range(7000)),
        *([f"坏公司{i}", "12345", ""] for i in range(6000)),
    ]
    result = roster(tmp_path, rows)
    report = store_roster(engine, result, now=T0)
    assert (report.inserted, report.new_rejects) == (7000, 6000)
    assert store_roster(engine, result, now=T1).new_rejects == 0
    half = roster(tmp_path, rows[:3501], "half.csv")
    report = store_roster(engine, half, now=T1)
    assert (report.deactivated, report.updated) == (3500, 3500)
    with engine.connect() as conn:
        active = conn.execute(sa.select(sa.func.count()).where(Company.active)).scalar_one()
    assert active == 3500


def test_new_companies_get_ids_in_roster_order(engine: Engine, tmp_path: Path) -> None:
    """The fetch takes due companies by id: a roster's new companies are asked for in its order."""
    names = [f"{i % 7}测试建设第{i}有限公司" for i in range(6000)]
    store_roster(engine, roster(tmp_path, [HEADER, *([name, "", ""] for name in names)]), now=T0)
    with engine.connect() as conn:
        stored = conn.execute(sa.select(Company.name).order_by(Company.id)).scalars().all()
    assert stored == names


def test_a_uscc_typed_as_a_name_and_given_as_a_code_is_one_company(
    engine: Engine, tmp_path: Path
) -> None:
    """Two entries with one match key: the later row updates the company the first one wrote
    (one statement cannot touch a row twice on PostgreSQL)."""
    rows = [HEADER, [USCC_A, "", ""], ["北京建工集团有限责任公司", USCC_A, ""], ["乙公司", "", ""]]
    report = store_roster(engine, roster(tmp_path, rows), now=T0)
    assert report.accepted == 3
    stored = companies(engine)
    assert set(stored) == {USCC_A, match_key("乙公司")}
    assert (stored[USCC_A]["name"], stored[USCC_A]["uscc"], stored[USCC_A]["query"]) == (
        "北京建工集团有限责任公司",
        USCC_A,
        USCC_A,
    )


def test_a_failed_store_leaves_the_next_one_working(engine: Engine, tmp_path: Path) -> None:
    """A store that fails (here: a USCC learnt elsewhere for a company the roster lists by name,
    and given again on another row) changes nothing, and the next store works."""
    store_roster(engine, roster(tmp_path, [HEADER, ["甲公司", "", ""]]), now=T0)
    key = match_key("甲公司")
    with engine.begin() as conn:
        conn.execute(sa.update(Company).where(Company.match_key == key).values(uscc=USCC_A))
    clash = roster(
        tmp_path, [HEADER, ["甲公司", "", ""], ["乙公司", USCC_A, ""], ["丙公司", "", ""]]
    )
    for _ in range(2):
        with pytest.raises(sa.exc.IntegrityError):
            store_roster(engine, clash, now=T1)
        assert list(companies(engine)) == [key]
    again = roster(tmp_path, [HEADER, ["甲公司", "", ""], ["丙公司", "", ""]])
    report = store_roster(engine, again, now=T1)
    assert (report.inserted, report.updated) == (1, 0)
    assert set(companies(engine)) == {key, match_key("丙公司")}


def test_storing_leaves_the_connections_settings_as_they_were(
    engine: Engine, tmp_path: Path
) -> None:
    if engine.dialect.name != "sqlite":
        pytest.skip("the page cache is SQLite's")
    with engine.connect() as conn:
        before = conn.exec_driver_sql("PRAGMA cache_size").scalar_one()
    store_roster(engine, roster(tmp_path, ROSTER), now=T0)
    with engine.connect() as conn:  # the pool hands back the connection the store used
        assert conn.exec_driver_sql("PRAGMA cache_size").scalar_one() == before
        assert conn.exec_driver_sql("SELECT count(*) FROM sqlite_temp_master").scalar_one() == 0


def test_values_special_to_copy_are_stored_as_given(engine: Engine, tmp_path: Path) -> None:
    """Companies reach PostgreSQL by COPY, whose text format gives \\N, \\. and \\t meanings."""
    names = ["\\N", "\\.", "a\\.b", "甲\\公司", "\\\\", "\\t", "'; DROP TABLE companies;--"]
    result = roster(tmp_path, [HEADER, *([name, "", ""] for name in names)], "w\\eird\tname.csv")
    assert store_roster(engine, result, now=T0).inserted == len(names)
    with engine.connect() as conn:
        stored = conn.execute(
            sa.select(Company.name, Company.query, Company.roster_source).order_by(Company.id)
        ).all()
    assert [tuple(row) for row in stored] == [(n, n, "w\\eird\tname.csv") for n in names]
    report = store_roster(engine, result, now=T1)
    assert (report.inserted, report.updated, report.new_rejects) == (0, 0, 0)
