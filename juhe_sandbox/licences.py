"""Certificates: how they look on day 0 and how each day's event changes them.

Private to the sandbox; `Dataset` drives it with generators seeded per company and per day.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from random import Random
from typing import Any
from zoneinfo import ZoneInfo

from juhe_sandbox import names as vocab

SHANGHAI = ZoneInfo("Asia/Shanghai")
DAY_ZERO = date(2025, 3, 3)  # the calendar date of sandbox day 0
MAX_CERTS = 8


@dataclass(frozen=True, slots=True)
class LicenseTruth:
    """A licence as the API shows it, parsed: what a correct pipeline should store."""

    category: str
    lic_no: str
    lic_name: tuple[str, ...]
    issue_org: str
    lic_scope: str
    url: str
    validity_start: date | None
    validity_end: date | None
    open_ended: bool
    created_time: datetime
    updated_time: datetime


@dataclass(frozen=True, slots=True)
class SandboxEvent:
    """What happened to one licence of one company on `day`."""

    day: int
    kind: str
    company_index: int
    lic_no: str
    category: str


@dataclass(frozen=True, slots=True)
class Profile:
    """Company facts that licences depend on."""

    kind: str
    province: vocab.Province
    city: str
    url: str


@dataclass(slots=True)
class Cert:
    """One certificate while a company's history is replayed (mutable)."""

    serial: int
    truth: LicenseTruth
    date_only: bool  # created/updated shown as dates, so their truth is midnight
    scope_style: int
    scope_edit: int = 0
    removed: bool = False
    history: list[LicenseTruth] = field(default_factory=list)

    def revise(self, **changes: Any) -> None:
        """Publish a new version, keeping the one shown so far in history."""
        self.history.append(self.truth)
        self.truth = dataclasses.replace(self.truth, **changes)


@dataclass(slots=True)
class State:
    """A company's certificates after replaying events up to some day."""

    certs: list[Cert]
    event: SandboxEvent | None = None  # the latest event applied
    glitch: dict[int, LicenseTruth] = field(default_factory=dict)  # serial -> shown instead


# --- day 0 ----------------------------------------------------------------------------------

_CERT_COUNTS = ((1, 30), (2, 28), (3, 18), (4, 12), (5, 7), (6, 5))


def initial_certs(rng: Random, profile: Profile) -> list[Cert]:
    """A known company's certificates on day 0: one to six, the first of its main category."""
    options = vocab.KIND_CATEGORIES[profile.kind]
    certs: list[Cert] = []
    for serial in range(vocab.pick_weighted(rng, _CERT_COUNTS)):
        category = options[0][0] if serial == 0 else vocab.pick_weighted(rng, options)
        blank_no = rng.random() < 0.02 and all(c.truth.lic_no for c in certs)
        certs.append(new_cert(rng, serial, category, profile, certs, blank_no=blank_no))
    return certs


def new_cert(
    rng: Random,
    serial: int,
    category: str,
    profile: Profile,
    others: list[Cert],
    *,
    blank_no: bool = False,
    day: int | None = None,
) -> Cert:
    """A certificate as first published: with a past on day 0 (`day` None), else new on `day`."""
    no_names = day is None and rng.random() < 0.015
    names = [] if no_names else vocab.qualification_names(rng, category)
    level = vocab.issuer_level(names)
    lic_no = "" if blank_no else _lic_no(rng, category, level, profile, others)
    date_only = rng.random() < 0.35
    style = vocab.pick_weighted(rng, ((0, 55), (1, 15), (2, 30)))
    if day is None:
        created, updated = _past_times(rng, date_only)
        issued = updated.date() - timedelta(days=rng.randint(0, 1500))
        start = None if rng.random() < 0.02 else issued
    else:
        created = updated = event_time(rng, day, date_only)
        start = DAY_ZERO + timedelta(days=day)
    open_ended = rng.random() < (0.3 if vocab.LABOUR in names else 0.05)
    truth = LicenseTruth(
        category=category,
        lic_no=lic_no,
        lic_name=tuple(names),
        issue_org=vocab.issue_org(level, profile.province, profile.city),
        lic_scope=vocab.scope_text(category, names, style, 0),
        url=profile.url,
        validity_start=start,
        validity_end=None if open_ended else _validity_end(rng, start),
        open_ended=open_ended,
        created_time=created,
        updated_time=updated,
    )
    return Cert(serial, truth, date_only, style)


def _lic_no(rng: Random, category: str, level: int, profile: Profile, others: list[Cert]) -> str:
    """Like D241001611: category letter, issuer level, province code, six digits."""
    taken = {c.truth.lic_no for c in others}
    prefix = f"{vocab.LIC_NO_PREFIX[category]}{level}{profile.province.code}"
    while True:
        number = f"{prefix}{rng.randint(0, 999999):06d}"
        if number not in taken:
            return number


def add_years(day: date, years: int) -> date:
    try:
        return day.replace(year=day.year + years)
    except ValueError:  # 29 February
        return day.replace(year=day.year + years, day=28)


def _validity_end(rng: Random, start: date | None) -> date | None:
    if rng.random() < 0.01:
        return None  # not published
    if start is None:
        return DAY_ZERO + timedelta(days=rng.randint(-200, 1500))
    if start.year < 2021 and rng.random() < 0.3:
        return date(2025, 12, 31)  # the nationwide extension of older certificates
    return add_years(start, 5) - timedelta(days=1)


def _at(day: date, seconds: int) -> datetime:
    return datetime.combine(day, time(0), SHANGHAI) + timedelta(seconds=seconds)


def _past_times(rng: Random, date_only: bool) -> tuple[datetime, datetime]:
    """created_time and updated_time before day 0; for some, updated equals created."""
    created_day = date(2019, 6, 1) + timedelta(days=rng.randint(0, 1800))
    updated_day = (
        created_day
        if rng.random() < 0.2
        else min(created_day + timedelta(days=rng.randint(1, 700)), DAY_ZERO - timedelta(days=1))
    )
    if date_only:
        return _at(created_day, 0), _at(updated_day, 0)
    created = _at(created_day, rng.randint(0, 86399))
    return created, max(created, _at(updated_day, rng.randint(0, 86399)))


def event_time(rng: Random, day: int, date_only: bool) -> datetime:
    """A time on sandbox day `day`: later than any time shown on an earlier day."""
    seconds = 0 if date_only else rng.randint(8 * 3600, 20 * 3600)
    return _at(DAY_ZERO + timedelta(days=day), seconds)


# --- events ---------------------------------------------------------------------------------


def apply_event(state: State, rng: Random, profile: Profile, index: int, day: int) -> None:
    """Draw and apply the company's event of `day`; set `state.event` (and `state.glitch`)."""
    present = [c for c in state.certs if not c.removed]
    removed = [c for c in state.certs if c.removed]
    options: list[tuple[str, int]] = [("update", 30), ("remove", 12), ("same_time_anomaly", 8)]
    options = options if present else []
    if any(len(c.truth.lic_name) >= 2 for c in present):
        options.append(("reorder", 14))
    if removed:
        options.append(("restore", 40))
    if any(_can_be_stale(c) for c in present):
        options.append(("stale", 12))
    if len(state.certs) < MAX_CERTS or not options:
        options.append(("add", 10))
    kind = vocab.pick_weighted(rng, options)
    cert = _HANDLERS[kind](state, rng, profile, day)
    state.event = SandboxEvent(day, kind, index, cert.truth.lic_no, cert.truth.category)


def _update(state: State, rng: Random, profile: Profile, day: int) -> Cert:
    cert = rng.choice([c for c in state.certs if not c.removed])
    cert.revise(updated_time=event_time(rng, day, cert.date_only), **_content_change(cert, rng))
    return cert


def _reorder(state: State, rng: Random, profile: Profile, day: int) -> Cert:
    cert = rng.choice([c for c in state.certs if not c.removed and len(c.truth.lic_name) >= 2])
    order = list(cert.truth.lic_name)
    while tuple(order) == cert.truth.lic_name:
        rng.shuffle(order)
    cert.truth = dataclasses.replace(cert.truth, lic_name=tuple(order))
    return cert


def _add(state: State, rng: Random, profile: Profile, day: int) -> Cert:
    category = vocab.pick_weighted(rng, vocab.KIND_CATEGORIES[profile.kind])
    serial = max((c.serial for c in state.certs), default=-1) + 1
    cert = new_cert(rng, serial, category, profile, state.certs, day=day)
    state.certs.append(cert)
    return cert


def _remove(state: State, rng: Random, profile: Profile, day: int) -> Cert:
    cert = rng.choice([c for c in state.certs if not c.removed])
    cert.removed = True
    return cert


def _restore(state: State, rng: Random, profile: Profile, day: int) -> Cert:
    cert = rng.choice([c for c in state.certs if c.removed])
    cert.removed = False
    if rng.random() < 0.5:
        cert.revise(updated_time=event_time(rng, day, cert.date_only), **_content_change(cert, rng))
    return cert


def _stale(state: State, rng: Random, profile: Profile, day: int) -> Cert:
    cert = rng.choice([c for c in state.certs if not c.removed and _can_be_stale(c)])
    state.glitch[cert.serial] = cert.history[-1] if cert.history else _older_version(cert, rng)
    return cert


def _same_time_anomaly(state: State, rng: Random, profile: Profile, day: int) -> Cert:
    cert = rng.choice([c for c in state.certs if not c.removed])
    edit = (cert.scope_edit + rng.randint(1, len(vocab.SCOPE_EDITS) - 1)) % len(vocab.SCOPE_EDITS)
    scope = vocab.scope_text(cert.truth.category, cert.truth.lic_name, cert.scope_style, edit)
    state.glitch[cert.serial] = dataclasses.replace(cert.truth, lic_scope=scope)
    return cert


_HANDLERS: dict[str, Callable[[State, Random, Profile, int], Cert]] = {
    "update": _update,
    "reorder": _reorder,
    "add": _add,
    "remove": _remove,
    "restore": _restore,
    "stale": _stale,
    "same_time_anomaly": _same_time_anomaly,
}


def _can_be_stale(cert: Cert) -> bool:
    """An older version exists (or can plausibly have existed) before the current one."""
    truth = cert.truth
    return bool(cert.history) or truth.updated_time - truth.created_time >= timedelta(days=2)


def _older_version(cert: Cert, rng: Random) -> LicenseTruth:
    """A plausible earlier version of a licence that changed before day 0."""
    truth = cert.truth
    older = truth.created_time + (truth.updated_time - truth.created_time) * rng.uniform(0.2, 0.8)
    older = _at(older.date(), 0) if cert.date_only else older.replace(microsecond=0)
    start, end = truth.validity_start, truth.validity_end
    if start and end and rng.random() < 0.5:
        return dataclasses.replace(
            truth,
            updated_time=older,
            validity_start=add_years(start, -5),
            validity_end=add_years(end, -5),
        )
    if len(truth.lic_name) >= 2:
        names = truth.lic_name[:-1]
        scope = vocab.scope_text(truth.category, names, cert.scope_style, cert.scope_edit)
        return dataclasses.replace(truth, updated_time=older, lic_name=names, lic_scope=scope)
    edit = (cert.scope_edit + 1) % len(vocab.SCOPE_EDITS)
    scope = vocab.scope_text(truth.category, truth.lic_name, cert.scope_style, edit)
    return dataclasses.replace(truth, updated_time=older, lic_scope=scope)


def _content_change(cert: Cert, rng: Random) -> dict[str, Any]:
    """One or two content edits of an update: extend validity, add/remove a name, edit scope."""
    truth = cert.truth
    names = list(truth.lic_name)
    extra = vocab.extra_name(rng, truth.category, names)
    kinds = ["scope"]
    if truth.validity_end is not None:
        kinds.append("extend")
    if extra is not None:
        kinds.append("name_add")
    if len(names) >= 2:
        kinds.append("name_remove")
    chosen = rng.sample(kinds, min(len(kinds), rng.randint(1, 2)))
    changes: dict[str, Any] = {}
    if "extend" in chosen and truth.validity_end is not None:
        changes["validity_end"] = add_years(truth.validity_end, 5)
    if "name_add" in chosen and extra is not None:
        names.append(extra)
    if "name_remove" in chosen:
        names.pop(rng.randrange(len(truth.lic_name)))  # an original one: edits never cancel
    if "scope" in chosen:
        cert.scope_edit = (cert.scope_edit + 1) % len(vocab.SCOPE_EDITS)
    changes["lic_name"] = tuple(names)
    changes["lic_scope"] = vocab.scope_text(
        truth.category, names, cert.scope_style, cert.scope_edit
    )
    return changes
