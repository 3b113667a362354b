"""Normalized fingerprints: a replay skips exactly the companies whose raw responses (and parser)
are unchanged since they were normalized (both backends)."""

from __future__ import annotations

import hashlib

import pytest
import sqlalchemy as sa
from alembic import command
from sqlalchemy.engine import Engine

from models import Company, License, RawResponse
from pipelines.db import alembic_config, upgrade
from pipelines.normalize import fingerprint, normalize_pending, renormalize, writer
from tests.normalize import add_raw, body, day, digest, item, make_company
from tests.normalize.test_resilience import land_days


def stored(engine: Engine) -> dict[int, str | None]:
    with engine.connect() as conn:
        rows = conn.execute(sa.select(Company.id, Company.normalized_fingerprint)).tuples()
        return dict(rows.all())


def expected(engine: Engine, company_id: int) -> str:
    """The documented fold, spelled out: sha256(PARSER_VERSION), then sha256(fp + body_sha256)
    over the company's raw responses in (fetched_at, id) order."""
    raw = RawResponse.__table__.c
    with engine.connect() as conn:
        hashes = (
            conn.execute(
                sa.select(raw.body_sha256)
                .where(raw.company_id == company_id)
                .order_by(raw.fetched_at, raw.id)
            )
            .scalars()
            .all()
        )
    fp = hashlib.sha256(fingerprint.PARSER_VERSION.encode()).hexdigest()
    for body_sha256 in hashes:
        fp = hashlib.sha256((fp + body_sha256).encode()).hexdigest()
    return fp


def raw_count(engine: Engine, company_id: int) -> int:
    with engine.connect() as conn:
        return conn.execute(
            sa.select(sa.func.count()).where(RawResponse.company_id == company_id)
        ).scalar_one()


@pytest.fixture
def loaded(engine: Engine) -> int:
    """60 companies, 3 days each, normalized; returns the number of companies."""
    land_days(engine, size=60, days=3)
    report = normalize_pending(engine, shards=None, run_id="first", chunk_size=50)
    return report.companies


def test_every_normalize_path_stores_the_documented_fold(engine: Engine) -> None:
    company = make_company(engine)
    # Landed out of fetched order: ids and fetched_at disagree.
    add_raw(engine, company, body([item("A")]), day(2))
    normalize_pending(engine, shards=[0], run_id="one")
    assert stored(engine)[company] == expected(engine, company)
    add_raw(engine, company, body([item("A"), item("B")]), day(1))
    add_raw(engine, company, body([item("A"), item("B")]), day(1))
    normalize_pending(engine, shards=[0], run_id="two")  # only the two pending bodies are read
    assert stored(engine)[company] == expected(engine, company)
    assert stored(engine)[company] != fingerprint.fold([])
    renormalize(engine, shards=[0], run_id="rebuild", rebuild=True)
    assert stored(engine)[company] == expected(engine, company)


def test_a_no_change_replay_skips_every_company_and_changes_nothing(
    engine: Engine, loaded: int
) -> None:
    before, prints = digest(engine), stored(engine)
    assert None not in prints.values()
    report = renormalize(engine, shards=None, run_id="again")
    assert report.companies_skipped == loaded and report.companies == 0
    assert report.responses == 0 and report.chunks == 0 and not report.rows
    assert report.as_dict()["companies_skipped"] == loaded
    assert digest(engine) == before and stored(engine) == prints


def test_a_changed_fingerprint_replays_exactly_that_company(engine: Engine, loaded: int) -> None:
    before, prints = digest(engine), stored(engine)
    victim = sorted(prints)[7]
    with engine.begin() as conn:
        conn.execute(
            sa.update(Company).where(Company.id == victim).values(normalized_fingerprint="0" * 64)
        )
    report = renormalize(engine, shards=None, run_id="again")
    assert report.companies == 1 and report.companies_skipped == loaded - 1
    assert report.responses == raw_count(engine, victim)
    assert not report.changes and report.rows == {"companies": {"updated": 1}}
    assert digest(engine) == before and stored(engine) == prints


def test_a_new_raw_response_replays_exactly_that_company(engine: Engine, loaded: int) -> None:
    prints = stored(engine)
    company = make_company(engine, name="新来的建设有限公司")
    normalize_pending(engine, shards=[0], run_id="new")
    assert stored(engine)[company] is None  # no raw response yet: nothing to fingerprint
    add_raw(engine, company, body([item("N1")]), day(5))
    with engine.connect() as conn:
        victim = conn.execute(
            sa.select(sa.func.min(Company.id)).where(Company.license_count > 0)
        ).scalar_one()
    add_raw(engine, victim, body(error_code=260204), day(9))  # not found: every licence removed
    report = renormalize(engine, shards=None, run_id="again")
    assert report.companies == 2 and report.companies_skipped == loaded - 1
    assert report.responses == raw_count(engine, victim) + 1
    assert report.changes["added"] == 1 and report.changes["removed"] > 0
    after = stored(engine)
    assert after[victim] == expected(engine, victim) != prints[victim]
    assert after[company] == expected(engine, company)
    assert {k: v for k, v in after.items() if k not in (victim, company)} == {
        k: v for k, v in prints.items() if k != victim
    }
    assert not renormalize(engine, shards=None, run_id="third").companies


def test_a_parser_version_change_replays_everything(
    engine: Engine, loaded: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    before, prints = digest(engine), stored(engine)
    monkeypatch.setattr(fingerprint, "PARSER_VERSION", "next")
    report = renormalize(engine, shards=None, run_id="new-parser")
    assert report.companies == loaded and report.companies_skipped == 0
    assert not report.changes and digest(engine) == before
    after = stored(engine)
    assert all(after[k] != prints[k] for k in prints)
    assert renormalize(engine, shards=None, run_id="again").companies_skipped == loaded


def test_a_rebuild_ignores_fingerprints_and_restores_them(engine: Engine, loaded: int) -> None:
    before, prints = digest(engine), stored(engine)
    report = renormalize(engine, shards=None, run_id="rebuild", rebuild=True)
    assert report.companies == loaded and report.companies_skipped == 0
    assert digest(engine) == before and stored(engine) == prints


def test_a_wiped_shard_is_never_skipped(engine: Engine, loaded: int) -> None:
    """A rebuild that dies after its wipe leaves no fingerprint claiming the deleted rows."""
    before = digest(engine)
    with engine.connect() as conn:
        shard = conn.execute(
            sa.select(Company.shard).join(License, License.company_id == Company.id).limit(1)
        ).scalar_one()
        in_shard = conn.execute(
            sa.select(sa.func.count()).where(Company.shard == shard)
        ).scalar_one()
    writer._wipe(engine, [shard])
    assert digest(engine) != before
    report = renormalize(engine, shards=None, run_id="resume")
    assert report.companies == in_shard and report.companies_skipped == loaded - in_shard
    assert digest(engine) == before


def test_migration_0003_round_trip_keeps_the_data(engine: Engine, database_url: str) -> None:
    """Dropping the column must not recreate `companies` (a DROP TABLE would cascade)."""
    land_days(engine, size=10, days=1)
    normalize_pending(engine, shards=None, run_id="first")
    before = digest(engine)
    engine.dispose()
    command.downgrade(alembic_config(database_url), "0002")
    assert "normalized_fingerprint" not in {
        c["name"] for c in sa.inspect(engine).get_columns("companies")
    }
    upgrade(database_url)
    assert digest(engine) == before and set(stored(engine).values()) == {None}
    assert renormalize(engine, shards=None, run_id="again").companies_skipped == 0
    assert digest(engine) == before
