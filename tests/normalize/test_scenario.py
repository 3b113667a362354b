"""Twelve days of the sandbox world, normalized day by day and checked against an independent
model of the change-tracking contract computed from the sandbox's logical truth."""

from __future__ import annotations

import datetime as dt
import hashlib
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from juhe_sandbox.dataset import Dataset, LicenseTruth
from models import Company, License, LicenseChange, LicenseName, LicenseVersion
from pipelines.normalize import normalize_pending, renormalize
from pipelines.shards import shard_of
from tests.normalize import add_raws, day, digest, raw_row

DAYS = 12
SIZE = 150
FIELDS = (
    "lic_name",
    "issue_org",
    "lic_scope",
    "url",
    "validity_start",
    "validity_end",
    "open_ended",
    "created_time",
    "updated_time",
)

Key = tuple[str, str, str]  # company name, category, lic_no


def key_of(company: str, truth: LicenseTruth) -> Key:
    """The documented key: lic_no, or "~" + sha256(category, sorted names)[:16] when blank."""
    if truth.lic_no:
        return (company, truth.category, truth.lic_no)
    material = "\x1f".join([truth.category, *sorted(truth.lic_name)])
    return (company, truth.category, "~" + hashlib.sha256(material.encode()).hexdigest()[:16])


def content(truth: LicenseTruth) -> dict[str, Any]:
    values = {f: getattr(truth, f) for f in FIELDS}
    values["lic_name"] = frozenset(truth.lic_name)
    return values


@dataclass
class Expected:
    current: LicenseTruth  # the stored version (its lic_name order gives the positions)
    versions: dict[dt.datetime, dict[str, Any]]
    removed: bool = False


@dataclass
class Model:
    """The contract, in dicts: every response here is the newest and lists every licence."""

    licences: dict[Key, Expected] = field(default_factory=dict)
    log: Counter[tuple[Key, str, frozenset[str] | None]] = field(default_factory=Counter)
    anomalies: int = 0

    def apply(self, company: str, truths: list[LicenseTruth]) -> None:
        listed = set()
        for truth in truths:
            key = key_of(company, truth)
            listed.add(key)
            self._apply_one(key, truth)
        for key, expected in self.licences.items():
            if key[0] == company and key not in listed and not expected.removed:
                expected.removed = True
                self.log[(key, "removed", None)] += 1

    def _apply_one(self, key: Key, truth: LicenseTruth) -> None:
        expected = self.licences.get(key)
        if expected is None:
            self.licences[key] = Expected(truth, {truth.updated_time: content(truth)})
            self.log[(key, "added", None)] += 1
            return
        fields = None
        if truth.updated_time > expected.current.updated_time:
            old, new = content(expected.current), content(truth)
            fields = frozenset(f for f in FIELDS if old[f] != new[f])
            expected.current = truth
            expected.versions[truth.updated_time] = new
        elif truth.updated_time in expected.versions:
            self.anomalies += expected.versions[truth.updated_time] != content(truth)
        else:
            expected.versions[truth.updated_time] = content(truth)
        if expected.removed:
            expected.removed = False
            self.log[(key, "restored", fields)] += 1
        elif fields is not None:
            self.log[(key, "updated", fields)] += 1


def _key_columns() -> tuple[Any, ...]:
    return (Company.name, License.category, License.lic_no)


def db_licences(conn: sa.Connection) -> dict[Key, tuple[Any, ...]]:
    rows = conn.execute(
        sa.select(
            *_key_columns(),
            License.removed_at,
            License.source_updated_time,
            License.lic_scope,
            License.validity_start,
            License.validity_end,
            License.validity_open_ended,
            License.issue_org,
            License.source_created_time,
        ).join(Company, Company.id == License.company_id)
    )
    return {tuple(r[:3]): (r.removed_at is not None, *r[4:]) for r in rows}


def model_licences(model: Model) -> dict[Key, tuple[Any, ...]]:
    return {
        key: (
            e.removed,
            e.current.updated_time,
            e.current.lic_scope,
            e.current.validity_start,
            e.current.validity_end,
            e.current.open_ended,
            e.current.issue_org,
            e.current.created_time,
        )
        for key, e in model.licences.items()
    }


def db_names(conn: sa.Connection) -> dict[Key, list[str]]:
    rows = conn.execute(
        sa.select(*_key_columns(), LicenseName.name.label("qualification"))
        .join(License, License.id == LicenseName.license_id)
        .join(Company, Company.id == License.company_id)
        .order_by(LicenseName.position)
    )
    names: dict[Key, list[str]] = {}
    for row in rows:
        names.setdefault(tuple(row[:3]), []).append(row.qualification)
    return names


def db_versions(conn: sa.Connection) -> dict[Key, list[tuple[dt.datetime, dt.datetime | None]]]:
    rows = conn.execute(
        sa.select(*_key_columns(), LicenseVersion.valid_from, LicenseVersion.valid_to)
        .join(License, License.id == LicenseVersion.license_id)
        .join(Company, Company.id == License.company_id)
        .order_by(LicenseVersion.valid_from)
    )
    versions: dict[Key, list[tuple[dt.datetime, dt.datetime | None]]] = {}
    for row in rows:
        versions.setdefault(tuple(row[:3]), []).append((row.valid_from, row.valid_to))
    return versions


def model_versions(model: Model) -> dict[Key, list[tuple[dt.datetime, dt.datetime | None]]]:
    chains = {}
    for key, expected in model.licences.items():
        times = sorted(expected.versions)
        chains[key] = list(zip(times, [*times[1:], None], strict=True))
    return chains


def db_changes(conn: sa.Connection) -> Counter[tuple[Key, str, frozenset[str] | None]]:
    rows = conn.execute(
        sa.select(*_key_columns(), LicenseChange.change_type, LicenseChange.changed_fields)
        .join(License, License.id == LicenseChange.license_id)
        .join(Company, Company.id == License.company_id)
    )
    return Counter(
        (
            tuple(r[:3]),
            r.change_type,
            None if r.changed_fields is None else frozenset(r.changed_fields),
        )
        for r in rows
    )


def assert_matches(engine: Engine, model: Model, on_day: int) -> None:
    with engine.connect() as conn:
        assert db_licences(conn) == model_licences(model), f"licences on day {on_day}"
        expected_names = {
            k: list(e.current.lic_name) for k, e in model.licences.items() if e.current.lic_name
        }
        assert db_names(conn) == expected_names, f"license_names on day {on_day}"
        assert db_versions(conn) == model_versions(model), f"versions on day {on_day}"
        assert db_changes(conn) == model.log, f"change log on day {on_day}"
        counts = dict(conn.execute(sa.select(Company.name, Company.license_count)).all())
    current = Counter(k[0] for k, e in model.licences.items() if not e.removed)
    assert counts == {name: current.get(name, 0) for name in counts}, f"counts on day {on_day}"


@pytest.mark.slow
def test_twelve_sandbox_days_match_the_contract_model(engine: Engine) -> None:
    dataset = Dataset(seed=11, size=SIZE)
    with engine.begin() as conn:
        ids = {
            c.name: conn.execute(
                sa.insert(Company)
                .values(name=c.name, match_key=c.name, query=c.name, shard=shard_of(c.name))
                .returning(Company.id)
            ).scalar_one()
            for c in dataset.companies
        }
    model = Model()
    kinds: Counter[str] = Counter()
    for n in range(DAYS):
        kinds.update(event.kind for event in dataset.events(n))
        add_raws(
            engine,
            [raw_row(ids[c.name], dataset.response(c.name, n), day(n)) for c in dataset.companies],
        )
        for company in dataset.companies:
            model.apply(company.name, dataset.licenses(company, n))
        report = normalize_pending(engine, shards=None, run_id=f"day-{n}", chunk_size=64)
        assert report.by_status["invalid"] == 0
        assert not report.unparseable and not report.drift and not report.missing_required
        assert_matches(engine, model, n)
    assert sum(1 for key in model.log if key[1] == "restored") > 0
    assert model.anomalies > 0 and kinds["stale"] > 0 and kinds["reorder"] > 0
    # A replay of all twelve days changes nothing; a rebuild from raw reproduces every table.
    before = digest(engine)
    replay = renormalize(engine, shards=None, run_id="replay")
    assert not replay.changes and digest(engine) == before
    renormalize(engine, shards=None, run_id="rebuild", rebuild=True)
    assert digest(engine) == before
