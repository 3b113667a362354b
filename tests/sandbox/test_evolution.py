"""Day-by-day evolution: every event kind happens and `licenses()` shows exactly that change."""

from __future__ import annotations

import dataclasses
from collections import Counter

import pytest

from juhe_sandbox.dataset import EVENT_KINDS, Dataset, LicenseTruth, SandboxEvent

DAYS = range(1, 31)


@pytest.fixture(scope="module")
def dataset() -> Dataset:
    return Dataset(seed=7, size=200)


@pytest.fixture(scope="module")
def events(dataset: Dataset) -> list[SandboxEvent]:
    return [event for day in DAYS for event in dataset.events(day)]


def _by_key(licences: list[LicenseTruth]) -> dict[tuple[str, str], LicenseTruth]:
    return {(lic.category, lic.lic_no): lic for lic in licences}


def _content(lic: LicenseTruth) -> tuple[object, ...]:
    return (
        frozenset(lic.lic_name),
        lic.lic_scope,
        lic.validity_start,
        lic.validity_end,
        lic.issue_org,
    )


def test_day_zero_has_no_events_and_few_companies_change_per_day(dataset: Dataset) -> None:
    assert dataset.events(0) == []
    known = sum(c.known for c in dataset.companies)
    assert all(len(dataset.events(day)) < known * 0.15 for day in (1, 2, 3))


def test_every_event_kind_occurs_within_thirty_days(events: list[SandboxEvent]) -> None:
    assert set(Counter(e.kind for e in events)) == set(EVENT_KINDS)
    assert all(
        len([e for e in events if (e.day, e.company_index) == (e2.day, e2.company_index)]) == 1
        for e2 in events
    )


def test_licenses_reflect_each_event(dataset: Dataset, events: list[SandboxEvent]) -> None:
    """The event's licence changes as its kind says; the company's other licences do not (except
    one shown by yesterday's one-day glitch returning to normal)."""
    glitches = {
        (e.company_index, e.day): (e.category, e.lic_no)
        for e in events
        if e.kind in ("stale", "same_time_anomaly")
    }
    for event in events:
        company = dataset.companies[event.company_index]
        before = _by_key(dataset.licenses(company, event.day - 1))
        after = _by_key(dataset.licenses(company, event.day))
        key = (event.category, event.lic_no)
        CHECKS[event.kind](before.get(key), after.get(key), event)
        untouched = (set(before) | set(after)) - {key, glitches.get((company.index, event.day - 1))}
        assert all(before.get(k) == after.get(k) for k in untouched), event


def _update(old: LicenseTruth | None, new: LicenseTruth | None, event: SandboxEvent) -> None:
    assert old and new and new.updated_time > old.updated_time and _content(new) != _content(old)
    assert new.created_time == old.created_time


def _reorder(old: LicenseTruth | None, new: LicenseTruth | None, event: SandboxEvent) -> None:
    assert old and new and new.lic_name != old.lic_name
    assert sorted(new.lic_name) == sorted(old.lic_name)
    assert new == dataclasses.replace(old, lic_name=new.lic_name)


def _add(old: LicenseTruth | None, new: LicenseTruth | None, event: SandboxEvent) -> None:
    assert old is None and new is not None and new.created_time == new.updated_time


def _remove(old: LicenseTruth | None, new: LicenseTruth | None, event: SandboxEvent) -> None:
    assert old is not None and new is None


def _restore(old: LicenseTruth | None, new: LicenseTruth | None, event: SandboxEvent) -> None:
    assert old is None and new is not None


def _stale(old: LicenseTruth | None, new: LicenseTruth | None, event: SandboxEvent) -> None:
    assert old and new and new.updated_time < old.updated_time and _content(new) != _content(old)


def _anomaly(old: LicenseTruth | None, new: LicenseTruth | None, event: SandboxEvent) -> None:
    assert old and new and new.updated_time == old.updated_time and new != old


CHECKS = {
    "update": _update,
    "reorder": _reorder,
    "add": _add,
    "remove": _remove,
    "restore": _restore,
    "stale": _stale,
    "same_time_anomaly": _anomaly,
}


def test_glitches_last_one_day(dataset: Dataset, events: list[SandboxEvent]) -> None:
    """After a stale or same-time day the current version is back (unless the next day has its
    own event for that company)."""
    event_days = {(e.company_index, e.day) for e in events}
    for event in events:
        if (
            event.kind in ("stale", "same_time_anomaly")
            and (event.company_index, event.day + 1) not in event_days
        ):
            company = dataset.companies[event.company_index]
            assert dataset.licenses(company, event.day + 1) == dataset.licenses(
                company, event.day - 1
            )


def test_restored_licences_were_removed_earlier(
    dataset: Dataset, events: list[SandboxEvent]
) -> None:
    removed = set()
    for event in sorted(events, key=lambda e: e.day):
        key = (event.company_index, event.category, event.lic_no)
        if event.kind == "remove":
            removed.add(key)
        if event.kind == "restore":
            assert key in removed
            removed.discard(key)


def test_unchanged_companies_answer_identical_bodies(
    dataset: Dataset, events: list[SandboxEvent]
) -> None:
    changed = {(e.company_index, e.day) for e in events}
    for company in dataset.companies[:60]:
        if (company.index, 5) not in changed:
            assert dataset.response(company.name, 5) == dataset.response(company.name, 4)
