"""Each asset check fails on a crafted bad state and passes on a good one."""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa

from models import ApiCall, Company, License, LicenseName, LicenseVersion, utcnow
from pipelines.juhe.checks import (
    anomalies_result,
    failure_rate_result,
    freshness_result,
    natural_key_result,
    open_version_result,
    quota_stop_result,
)
from pipelines.roster.checks import rejects_result

NOW = dt.datetime(2026, 11, 28, 12, tzinfo=dt.UTC)


def add_company(conn: sa.Connection, key: str, **values: object) -> int:
    row = {"name": key, "match_key": key, "query": key, "shard": 0, **values}
    return int(conn.execute(sa.insert(Company).values(**row).returning(Company.id)).scalar_one())


def add_license(conn: sa.Connection, company_id: int, lic_no: str, **values: object) -> int:
    row = {
        "company_id": company_id,
        "category": "建筑业企业资质",
        "lic_no": lic_no,
        "content_hash": "h",
        **values,
    }
    return int(conn.execute(sa.insert(License).values(**row).returning(License.id)).scalar_one())


def add_version(
    conn: sa.Connection, license_id: int, valid_from: dt.datetime, valid_to: dt.datetime | None
) -> None:
    conn.execute(
        sa.insert(LicenseVersion).values(
            license_id=license_id,
            valid_from=valid_from,
            valid_to=valid_to,
            content_hash="h",
            content={},
        )
    )


def test_failure_rate_check(engine) -> None:
    with engine.begin() as conn:
        ids = [add_company(conn, f"c{i}", fetch_status="ok") for i in range(10)]
        conn.execute(
            sa.insert(ApiCall),
            [
                {"company_id": i, "called_at": NOW, "attempt": 1, "outcome": "ok", "run_id": "r1"}
                for i in ids
            ],
        )
    assert failure_rate_result(engine, "r1", 0.05).passed
    with engine.begin() as conn:
        conn.execute(
            sa.update(Company)
            .where(Company.id == ids[0])
            .values(fetch_status="failed", last_error_code=260200)
        )
    result = failure_rate_result(engine, "r1", 0.05)
    assert not result.passed
    assert result.metadata["companies_failed"].value == 1
    assert failure_rate_result(engine, "another-run", 0.05).passed  # a run that called nobody


def test_freshness_check(engine) -> None:
    week = dt.timedelta(days=7)
    with engine.begin() as conn:
        add_company(conn, "fresh", fetch_status="ok", last_fetched_at=NOW - dt.timedelta(days=3))
        add_company(conn, "bad-query", fetch_status="invalid")
        add_company(conn, "gone", active=False)
    assert freshness_result(engine, week, NOW).passed
    with engine.begin() as conn:
        add_company(conn, "stale", fetch_status="ok", last_fetched_at=NOW - dt.timedelta(days=15))
    result = freshness_result(engine, week, NOW)
    assert not result.passed and result.metadata["examples"].value == "stale"


def test_natural_key_check(engine) -> None:
    with engine.begin() as conn:
        company = add_company(conn, "c")
        license_id = add_license(conn, company, "D1")
        conn.execute(
            sa.insert(LicenseName).values(
                license_id=license_id, name="施工劳务不分等级", position=0
            )
        )
    assert natural_key_result(engine).passed
    # The unique constraints make a duplicate impossible through the tables; the check guards a
    # copy whose constraints were lost (CREATE TABLE AS keeps none), as analysts sometimes make.
    with engine.begin() as conn:
        conn.execute(sa.text("ALTER TABLE license_names RENAME TO license_names_original"))
        conn.execute(sa.text("CREATE TABLE license_names AS SELECT * FROM license_names_original"))
        conn.execute(sa.text("INSERT INTO license_names SELECT * FROM license_names_original"))
    try:
        result = natural_key_result(engine)
        assert not result.passed
        assert result.metadata["license_names (license_id, name)"].value == 1
    finally:  # PostgreSQL test databases are shared by the tests of a worker: put the table back
        with engine.begin() as conn:
            conn.execute(sa.text("DROP TABLE license_names"))
            conn.execute(sa.text("ALTER TABLE license_names_original RENAME TO license_names"))


def test_open_version_check(engine) -> None:
    t1, t2 = NOW - dt.timedelta(days=30), NOW - dt.timedelta(days=2)
    with engine.begin() as conn:
        company = add_company(conn, "c")
        good = add_license(conn, company, "D1")
        add_version(conn, good, t1, t2)
        add_version(conn, good, t2, None)
        removed = add_license(conn, company, "D2", removed_at=NOW)
        add_version(conn, removed, t1, None)
    assert open_version_result(engine).passed
    with engine.begin() as conn:
        orphan = add_license(conn, company, "D3")
        add_version(conn, orphan, t1, t2)  # closed, and no open one
    result = open_version_result(engine)
    assert not result.passed
    assert result.metadata["licenses_without_exactly_one_open_version"].value == 1


def test_quota_anomaly_and_roster_checks_report_what_the_last_run_saw() -> None:
    assert quota_stop_result({"stopped_by": "", "remaining_due": 0}).passed
    stopped = quota_stop_result(
        {"stopped_by": "quota", "remaining_due": 17, "stop_message": "quota 10012"}
    )
    assert not stopped.passed and stopped.metadata["remaining_due"].value == 17
    assert anomalies_result(
        {"anomalies": 0, "responses_missing_required_fields": 0, "drift_fields": {}}
    ).passed
    assert not anomalies_result({"anomalies": 2, "drift_fields": {}}).passed
    assert not anomalies_result({"anomalies": 0, "drift_fields": {"new_field": 3}}).passed
    assert rejects_result(0, "").passed
    assert not rejects_result(3, "| reason | count |").passed
    assert utcnow().tzinfo is not None
