"""The sandbox's deterministic world: companies, their licences day by day, and API bodies.

Everything here is a pure function of `(seed, size)` and the arguments; there is no I/O.

- Companies are generated in one pass from a single seeded generator (fast at 100k).
- A company's licences on day 0 come from a generator seeded by `(seed, index)`. Whether it has
  an event on day `d` is a hash of `(seed, index, d)`; what the event does is drawn from a
  generator seeded by `(seed, index, d)` against the state left by earlier events. So
  `licenses(company, day)` replays only that company's own events, and `events(day)` replays
  only the companies with an event that day.
- `stale` and `same_time_anomaly` are one-day glitches: the API shows an older version (or the
  same `updated_time` with other content) on that day only and the current version again the
  next day. Every other event changes the company's state for good.
"""

from __future__ import annotations

import hashlib
import json
import zlib
from bisect import bisect
from collections.abc import Callable
from dataclasses import dataclass
from itertools import accumulate
from random import Random
from typing import Any

from juhe_sandbox import identifiers as ids
from juhe_sandbox import names as vocab
from juhe_sandbox.licences import (
    Cert,
    LicenseTruth,
    Profile,
    SandboxEvent,
    State,
    apply_event,
    initial_certs,
)
from juhe_sandbox.render import error_body, render_item

__all__ = ["Dataset", "LicenseTruth", "SandboxCompany", "SandboxEvent", "mix", "normalize_query"]

EVENT_RATE = 0.05  # share of known companies with an event on a given day
EVENT_KINDS = ("update", "reorder", "add", "remove", "restore", "stale", "same_time_anomaly")
_MASK = (1 << 64) - 1
_SALT_COMPANIES, _SALT_LICENCES, _SALT_EVENT, _SALT_NOISE, _SALT_ROSTER, _SALT_URL = range(1, 7)
MOHURD_URL = "http://jzsc.mohurd.gov.cn/data/company/detail?id="
_PROVINCE_BY_NAME = {p.name: p for p in vocab.PROVINCES}
_CITY_BY_REGION = {region: city for p in vocab.PROVINCES for city, region in p.cities}


def mix(*parts: int) -> int:
    """A stable 64-bit hash of integers (splitmix64 steps) that seeds per-entity generators."""
    h = 0x9E3779B97F4A7C15
    for part in parts:
        h = (h ^ (part & _MASK)) * 0xBF58476D1CE4E5B9 & _MASK
        h = (h ^ (h >> 27)) * 0x94D049BB133111EB & _MASK
        h ^= h >> 31
    return h


@dataclass(frozen=True, slots=True)
class SandboxCompany:
    index: int
    name: str
    uscc: str | None
    reg_no: str | None
    known: bool  # False: the API answers 260204 for it every day
    kind: str = "contractor"  # line of business: contractor, design, survey, supervision, cost
    province: str = ""


class Dataset:
    """The sandbox's companies and what the API answers about them on each day."""

    def __init__(self, seed: int = 7, size: int = 200, *, noise_garbage: bool = False) -> None:
        self.seed = seed
        self.size = size
        self.noise_garbage = noise_garbage
        self.companies = _generate_companies(seed, size)
        self._lookup: dict[str, int] = {}  # generated values are already normalized
        for company in self.companies:
            for key in (company.name, company.uscc, company.reg_no):
                if key:
                    self._lookup[key] = company.index

    def lookup(self, query: str) -> SandboxCompany | None:
        """The company a `name` parameter designates: exact name (brackets of either width),
        USCC (any case) or 注册号."""
        index = self._lookup.get(normalize_query(query))
        return None if index is None else self.companies[index]

    def licenses(self, company: SandboxCompany, day: int) -> list[LicenseTruth]:
        """The logical licences the API returns for the company on `day`, in returned order."""
        return [truth for _, truth in self._shown(company, day)]

    def events(self, day: int) -> list[SandboxEvent]:
        """What changed between `day - 1` and `day` (empty for day 0), by company index."""
        found = []
        for company in self.companies:
            if day > 0 and company.known and self._has_event(company.index, day):
                event = self._replay(company, day).event
                if event is not None:
                    found.append(event)
        return found

    def response(self, query: str, day: int) -> dict[str, Any]:
        """The JSON body for `name=query` on `day`, with the dataset's deterministic noise."""
        as_string = zlib.crc32(normalize_query(query).encode()) % 10 == 0
        company = self.lookup(query)
        shown = self._shown(company, day) if company is not None else []
        if not shown:
            return error_body(260204, as_string=as_string)
        assert company is not None
        items = [self._render(company, cert, truth) for cert, truth in shown]
        result = {"total": len(items), "items": items}
        canonical = json.dumps(result, ensure_ascii=False, sort_keys=True)
        sign = hashlib.md5(f"{self.seed}:{company.index}:{canonical}".encode()).hexdigest()
        reason = "查询成功" if company.index % 7 == 3 else "success"
        return {
            "result": result,
            "reason": reason,
            "sign": sign,
            "error_code": "0" if as_string else 0,
        }

    def roster_rows(self) -> list[tuple[str, str, str]]:
        """(企业名称, 统一社会信用代码, 注册号) per company; some rows give the name only."""
        rows = []
        for company in self.companies:
            name_only = mix(self.seed, company.index, _SALT_ROSTER) % 100 < 12
            uscc = "" if name_only else company.uscc or ""
            reg_no = "" if name_only else company.reg_no or ""
            rows.append((company.name, uscc, reg_no))
        return rows

    # --- replay -----------------------------------------------------------------------------

    def _has_event(self, index: int, day: int) -> bool:
        return mix(self.seed, index, day, _SALT_EVENT) < EVENT_RATE * _MASK

    def _shown(self, company: SandboxCompany, day: int) -> list[tuple[Cert, LicenseTruth]]:
        if not company.known:
            return []
        state = self._replay(company, day)
        return [(c, state.glitch.get(c.serial, c.truth)) for c in state.certs if not c.removed]

    def _replay(self, company: SandboxCompany, day: int) -> State:
        """The company's state on `day`; `event`/`glitch` are set only by that day's event."""
        if day < 0:
            raise ValueError("day must be >= 0")
        index, profile = company.index, self._profile(company)
        state = State(initial_certs(Random(mix(self.seed, index, _SALT_LICENCES)), profile))
        for d in range(1, day + 1):
            if self._has_event(index, d):
                state.glitch = {}
                apply_event(state, Random(mix(self.seed, index, d, _SALT_EVENT)), profile, index, d)
        if state.event is not None and state.event.day != day:
            state.event, state.glitch = None, {}
        return state

    def _profile(self, company: SandboxCompany) -> Profile:
        """Facts licences depend on, derived from the company (kept off the 100k-company list)."""
        region = company.uscc[2:8] if company.uscc else (company.reg_no or "")[:6]
        url_id = f"{mix(self.seed, company.index, _SALT_URL):016x}{company.index:020x}"
        return Profile(
            company.kind,
            _PROVINCE_BY_NAME[company.province],
            _CITY_BY_REGION[region],
            f"{MOHURD_URL}{url_id}",
        )

    def _render(self, company: SandboxCompany, cert: Cert, truth: LicenseTruth) -> dict[str, Any]:
        noise = Random(mix(self.seed, company.index, cert.serial, _SALT_NOISE))
        return render_item(truth, noise, date_only=cert.date_only, garbage=self.noise_garbage)


def normalize_query(query: str) -> str:
    """Trim, unify bracket width and upper-case letters (identifiers are case-insensitive)."""
    return query.strip().replace("(", "（").replace(")", "）").upper()


# --- companies ------------------------------------------------------------------------------


def _chooser(options: tuple[Any, ...], weights: tuple[int, ...]) -> Callable[[Random], Any]:
    """A fast weighted picker (bisect on cumulative weights) for the 100k-company loop."""
    cumulative = list(accumulate(weights))
    total = cumulative[-1]
    return lambda rng: options[bisect(cumulative, rng.random() * total)]


_pick_kind = _chooser(vocab.KINDS, vocab.KIND_WEIGHTS)
_pick_province = _chooser(vocab.PROVINCES, vocab.PROVINCE_WEIGHTS)
_pick_suffix = _chooser(tuple(s for s, _ in vocab.SUFFIXES), tuple(w for _, w in vocab.SUFFIXES))


def _generate_companies(seed: int, size: int) -> list[SandboxCompany]:
    """Unique names and identifiers. Every 20th company (index % 20 == 13) is unknown to the
    API and every 25th (index % 25 == 7) has only a 15-digit 注册号."""
    rng = Random(mix(seed, _SALT_COMPANIES))
    companies: list[SandboxCompany] = []
    seen: set[str] = set()
    for index in range(size):
        kind = _pick_kind(rng)
        province = _pick_province(rng)
        city, region = province.cities[int(rng.random() * len(province.cities))]
        name = _unique(seen, _company_name, rng, kind, province, city)
        reg_only = index % 25 == 7
        uscc = None if reg_only else _unique(seen, ids.make_uscc, rng, region)
        has_regno = reg_only or rng.random() < 0.08
        reg_no = _unique(seen, ids.make_regno, rng, region) if has_regno else None
        companies.append(
            SandboxCompany(index, name, uscc, reg_no, index % 20 != 13, kind, province.name)
        )
    return companies


def _unique(seen: set[str], make: Callable[..., str], *args: Any) -> str:
    """Call `make(*args)` until its value has not been used yet. Generated values are already
    in normalized form (full-width brackets, upper case, no spaces)."""
    while True:
        value = make(*args)
        if value not in seen:
            seen.add(value)
            return value


def _company_name(rng: Random, kind: str, province: vocab.Province, city: str) -> str:
    if kind == "contractor" and rng.random() < 0.02:
        pattern, first, second = vocab.STATE_OWNED[int(rng.random() * len(vocab.STATE_OWNED))]
        numerals = vocab.CHINESE_NUMERALS
        return pattern.format(
            a=numerals[int(rng.random() * first)], b=numerals[int(rng.random() * second)]
        )
    brand = (
        vocab.BRAND_FIRST[int(rng.random() * len(vocab.BRAND_FIRST))]
        + vocab.BRAND_SECOND[int(rng.random() * len(vocab.BRAND_SECOND))]
    )
    words = vocab.INDUSTRY_WORDS[kind]
    industry = words[int(rng.random() * len(words))]
    suffix = _pick_suffix(rng)
    if "{short}" in suffix:
        return brand + industry + suffix.format(short=province.short)
    roll = rng.random()
    prefix = (
        province.name
        if roll < 0.35
        else province.short
        if roll < 0.5
        else city.removesuffix("市")
        if roll < 0.9
        else ""
    )
    return prefix + brand + industry + suffix
