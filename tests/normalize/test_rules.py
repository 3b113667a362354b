"""The change-tracking contract, one rule per test, on crafted raw responses (both backends)."""

from __future__ import annotations

import datetime as dt

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from models import Company, License, RawResponse
from pipelines.normalize import NormalizeReport, normalize_pending
from tests.normalize import CST, add_raw, body, changes, day, item, licence, make_company, names
from tests.normalize import versions as versions_of

T1, T2, T3 = "2025-01-01 10:00:00", "2025-02-01 09:30:00", "2025-03-01 08:00:00"


def at(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text).replace(tzinfo=CST)


@pytest.fixture
def company(engine: Engine) -> int:
    return make_company(engine)


def load(engine: Engine, company: int, n: int, *items: dict, **kw: object) -> NormalizeReport:
    """Land one body fetched on day n and normalize it."""
    add_raw(engine, company, body(list(items), **kw), day(n))  # type: ignore[arg-type]
    return normalize_pending(engine, shards=[0], run_id=f"run-{n}")


def license_count(engine: Engine, company: int) -> int:
    with engine.connect() as conn:
        return conn.execute(sa.select(Company.license_count).where(Company.id == company)).scalar()


def kinds(engine: Engine, lic_no: str | None = None) -> list[str]:
    return [c["change_type"] for c in changes(engine, lic_no)]


def test_first_load_adds_every_licence_with_names_grades_and_one_open_version(
    engine: Engine, company: int
) -> None:
    report = load(engine, company, 0, item("A", T1), item("B", T1, lic_name="施工劳务不分等级"))
    assert report.changes == {"added": 2}
    assert report.by_status == {"complete": 1}
    assert kinds(engine) == ["added", "added"]
    added = changes(engine, "A")[0]
    assert added["detected_at"] == day(0) and added["source_updated_time"] == at(T1)
    assert added["new_values"]["lic_name"] == [
        "建筑工程施工总承包二级",
        "市政公用工程施工总承包三级",
    ]
    assert names(engine, "A") == [
        ("建筑工程施工总承包二级", 0, "二级"),
        ("市政公用工程施工总承包三级", 1, "三级"),
    ]
    assert names(engine, "B") == [("施工劳务不分等级", 0, "不分等级")]
    assert versions_of(engine, "A") == [(at(T1), None, at(T1).isoformat())]
    row = licence(engine, "A")
    assert row["validity_end"] == dt.date(2026, 1, 4) and row["removed_at"] is None
    assert row["first_seen_at"] == row["last_seen_at"] == day(0)
    assert license_count(engine, company) == 2


def test_newer_updated_time_updates_with_changed_fields_and_old_new_values(
    engine: Engine, company: int
) -> None:
    load(engine, company, 0, item("A", T1, lic_name=["甲级一", "乙级二"]))
    report = load(
        engine, company, 1, item("A", T2, lic_name=["乙级二", "丙级三"], validity_end="长期")
    )
    assert report.changes == {"updated": 1}
    (change,) = changes(engine, "A")[1:]
    assert change["change_type"] == "updated"
    assert change["changed_fields"] == ["lic_name", "validity_end", "open_ended", "updated_time"]
    assert change["old_values"] == {
        "lic_name": ["甲级一", "乙级二"],
        "validity_end": "2026-01-04",
        "open_ended": False,
        "updated_time": at(T1).isoformat(),
    }
    assert change["new_values"] == {
        "lic_name": ["乙级二", "丙级三"],
        "validity_end": None,
        "open_ended": True,
        "updated_time": at(T2).isoformat(),
    }
    assert change["source_updated_time"] == at(T2) and change["detected_at"] == day(1)
    assert names(engine, "A") == [("乙级二", 0, "乙级"), ("丙级三", 1, "丙级")]
    row = licence(engine, "A")
    assert row["validity_open_ended"] is True and row["validity_end"] is None
    assert row["source_updated_time"] == at(T2) and row["last_seen_at"] == day(1)
    assert versions_of(engine, "A") == [
        (at(T1), at(T2), at(T1).isoformat()),
        (at(T2), None, at(T2).isoformat()),
    ]


def test_a_pure_reorder_of_lic_name_is_not_a_change(engine: Engine, company: int) -> None:
    load(engine, company, 0, item("A", T1, lic_name=["甲", "乙", "丙"]))
    report = load(engine, company, 1, item("A", T1, lic_name=["丙", "甲", "乙"]))
    assert kinds(engine) == ["added"]
    assert not report.anomalies and not report.rows_inserted.get("license_versions")
    # Positions follow the stored version, which a reorder at the same updated_time keeps.
    assert [n for n, _, _ in names(engine, "A")] == ["甲", "乙", "丙"]
    assert len(versions_of(engine, "A")) == 1


def test_equal_or_older_updated_time_never_overwrites(engine: Engine, company: int) -> None:
    load(engine, company, 0, item("A", T2, lic_scope="现行范围"))
    load(engine, company, 1, item("A", T1, lic_scope="旧范围"))  # an older version (replay)
    load(engine, company, 2, item("A", T2, lic_scope="现行范围"))  # the same version again
    assert kinds(engine) == ["added"]
    assert licence(engine, "A")["lic_scope"] == "现行范围"
    assert licence(engine, "A")["source_updated_time"] == at(T2)
    # The older version went into history, closed where the current one begins.
    assert versions_of(engine, "A") == [
        (at(T1), at(T2), at(T1).isoformat()),
        (at(T2), None, at(T2).isoformat()),
    ]


def test_an_older_version_between_two_known_ones_is_closed_at_the_next(
    engine: Engine, company: int
) -> None:
    load(engine, company, 0, item("A", T1, lic_scope="一"))
    load(engine, company, 1, item("A", T3, lic_scope="三"))
    load(engine, company, 2, item("A", T2, lic_scope="二"))
    assert versions_of(engine, "A") == [
        (at(T1), at(T2), at(T1).isoformat()),
        (at(T2), at(T3), at(T2).isoformat()),
        (at(T3), None, at(T3).isoformat()),
    ]
    assert licence(engine, "A")["lic_scope"] == "三"
    assert kinds(engine, "A") == ["added", "updated"]


def test_same_updated_time_with_other_content_is_an_anomaly_not_a_change(
    engine: Engine, company: int
) -> None:
    load(engine, company, 0, item("A", T1, lic_scope="原范围"))
    report = load(engine, company, 1, item("A", T1, lic_scope="改过的范围"))
    assert report.anomalies == [
        {
            "company_id": company,
            "category": "建筑业企业资质",
            "lic_no": "A",
            "updated_time": at(T1).isoformat(),
            "fetched_at": day(1).astimezone(dt.UTC).isoformat(),
        }
    ]
    assert kinds(engine) == ["added"]
    assert licence(engine, "A")["lic_scope"] == "原范围"
    with engine.connect() as conn:  # the raw body is kept
        assert conn.execute(sa.select(sa.func.count()).select_from(RawResponse)).scalar() == 2


def test_missing_from_the_latest_complete_response_is_removed(engine: Engine, company: int) -> None:
    load(engine, company, 0, item("A", T1), item("B", T1))
    report = load(engine, company, 1, item("A", T1))
    assert report.changes == {"removed": 1}
    removed = changes(engine, "B")[-1]
    assert removed["change_type"] == "removed" and removed["detected_at"] == day(1)
    row = licence(engine, "B")
    assert row["removed_at"] == day(1) and row["last_seen_at"] == day(0)
    assert license_count(engine, company) == 1
    assert len(versions_of(engine, "B")) == 1  # history is kept, the version stays open
    load(engine, company, 2, item("A", T1))
    assert kinds(engine, "B") == ["added", "removed"]  # removed once


def test_a_removed_licence_that_comes_back_is_restored_once_with_its_changes(
    engine: Engine, company: int
) -> None:
    load(engine, company, 0, item("A", T1), item("B", T1), item("C", T1))
    load(engine, company, 1, item("A", T1))
    report = load(
        engine, company, 2, item("A", T1), item("B", T2, validity_end="2031-01-04"), item("C", T1)
    )
    assert report.changes == {"restored": 2}
    restored_b = changes(engine, "B")[-1]
    assert restored_b["change_type"] == "restored"
    assert restored_b["changed_fields"] == ["validity_end", "updated_time"]
    assert restored_b["new_values"]["validity_end"] == "2031-01-04"
    restored_c = changes(engine, "C")[-1]
    assert restored_c["change_type"] == "restored" and restored_c["changed_fields"] is None
    assert licence(engine, "B")["removed_at"] is None
    assert licence(engine, "B")["validity_end"] == dt.date(2031, 1, 4)
    assert kinds(engine, "B") == ["added", "removed", "restored"]
    assert license_count(engine, company) == 3


def test_not_found_removes_every_licence(engine: Engine, company: int) -> None:
    load(engine, company, 0, item("A", T1), item("B", T1))
    report = load(engine, company, 1, error_code=260204)
    assert report.by_status == {"not_found": 1} and report.changes == {"removed": 2}
    assert license_count(engine, company) == 0


@pytest.mark.parametrize(
    "payload",
    [
        body([item("A", T2, lic_scope="新")], total=2),  # partial
        body([item("A", T2, lic_scope="新"), {"lic_no": "X"}]),  # an item without category
        body([item("A", T2, lic_scope="新"), item("A", T2, lic_scope="新")], total=1),
    ],
    ids=["partial", "missing-category", "total-below-items"],
)
def test_partial_or_invalid_responses_never_remove_but_their_items_apply(
    engine: Engine, company: int, payload: dict
) -> None:
    load(engine, company, 0, item("A", T1), item("B", T1))
    add_raw(engine, company, payload, day(1))
    report = normalize_pending(engine, shards=[0], run_id="run-1")
    assert report.changes == {"updated": 1}
    assert licence(engine, "A")["lic_scope"] == "新"
    assert licence(engine, "B")["removed_at"] is None
    assert license_count(engine, company) == 2


@pytest.mark.parametrize(
    "payload",
    [
        "<html>502</html>",
        '{"error_code": 0, "result": {"it',
        '{"error_code": 0, "result": null}',
        body([item("A", T2, lic_scope="新")], error_code=10014),  # an error code trusts no item
    ],
)
def test_unusable_bodies_change_nothing_and_are_kept(
    engine: Engine, company: int, payload: str | dict
) -> None:
    load(engine, company, 0, item("A", T1))
    add_raw(engine, company, payload, day(1))
    report = normalize_pending(engine, shards=[0], run_id="run-1")
    assert report.by_status == {"invalid": 1} and not report.changes
    row = licence(engine, "A")
    assert row["removed_at"] is None and row["source_updated_time"] == at(T1)


def test_a_late_older_response_never_removes_or_restores(engine: Engine, company: int) -> None:
    load(engine, company, 0, item("A", T1), item("B", T1), item("C", T1))
    load(engine, company, 2, item("A", T1), item("C", T1))  # B removed on day 2
    # Fetched on day 1 but landing now: lists B, lacks C.
    add_raw(engine, company, body([item("A", T1), item("B", T1)]), day(1))
    report = normalize_pending(engine, shards=[0], run_id="late")
    assert not report.changes
    assert licence(engine, "B")["removed_at"] == day(2)
    assert licence(engine, "C")["removed_at"] is None
    assert license_count(engine, company) == 2


def test_responses_of_one_run_apply_in_fetched_order(engine: Engine, company: int) -> None:
    add_raw(engine, company, body([item("A", T2, lic_scope="二")]), day(2))
    add_raw(engine, company, body([item("A", T1, lic_scope="一"), item("B", T1)]), day(1))
    normalize_pending(engine, shards=[0], run_id="both")
    assert kinds(engine, "A") == ["added", "updated"]
    assert kinds(engine, "B") == ["added", "removed"]
    assert changes(engine, "B")[-1]["detected_at"] == day(2)


def test_blank_lic_no_gets_a_stable_key(engine: Engine, company: int) -> None:
    load(engine, company, 0, item("", T1, lic_name=["甲", "乙"]))
    load(engine, company, 1, item(None, T1, lic_name=["乙", "甲"]))
    with engine.connect() as conn:
        (lic_no,) = conn.execute(sa.select(License.lic_no)).scalars().all()
    assert lic_no.startswith("~")
    assert kinds(engine) == ["added"]


def test_drift_and_unparseable_values_are_reported(engine: Engine, company: int) -> None:
    report = load(
        engine, company, 0, item("A", T1, validity_end="不详", brand_new="x"), {"lic_no": "nocat"}
    )
    assert report.drift == {"items[].brand_new": 1}
    assert report.unparseable == {"validity_end": 1}
    assert report.missing_required == 1
    assert licence(engine, "A")["validity_end"] is None


def test_only_the_requested_shards_are_normalized(engine: Engine) -> None:
    here, there = make_company(engine, "甲公司", shard=3), make_company(engine, "乙公司", shard=4)
    add_raw(engine, here, body([item("A", T1)]), day(0))
    add_raw(engine, there, body([item("B", T1)]), day(0))
    report = normalize_pending(engine, shards=[3], run_id="r")
    assert report.responses == 1 and kinds(engine) == ["added"]
    with engine.connect() as conn:
        pending = (
            conn.execute(
                sa.select(RawResponse.company_id).where(RawResponse.normalized_at.is_(None))
            )
            .scalars()
            .all()
        )
    assert pending == [there]
