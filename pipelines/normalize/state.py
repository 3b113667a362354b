"""Load the stored state of a chunk of companies, in a few set-based queries.

Always: the companies and their licences (one row each, no JSON). Only when the chunk needs
them: the open version's content of licences that get a newer version (for the change's old
values), and the full version history of licences that get an older version.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from models import Company, License, LicenseVersion
from pipelines.normalize.parsing import UNKNOWN_TIME
from pipelines.normalize.tracking import (
    CompanyState,
    LicenseState,
    ResponseInput,
    Version,
    is_no_op,
)

_SLICE = 5000


def slices(values: Sequence[Any]) -> Iterator[list[Any]]:
    """Consecutive parts of at most 5,000 values, for IN (...) lists under drivers' limits."""
    for start in range(0, len(values), _SLICE):
        yield list(values[start : start + _SLICE])


def _stored_license(row: sa.Row[Any]) -> LicenseState:
    valid_from = row.source_updated_time or UNKNOWN_TIME
    current = Version(valid_from, row.content_hash, None, persisted=True)
    presence = (row.first_seen_at, row.last_seen_at, row.removed_at)
    return LicenseState(
        company_id=row.company_id,
        key=(row.category, row.lic_no),
        current=current,
        first_seen_at=row.first_seen_at,
        last_seen_at=row.last_seen_at,
        removed_at=row.removed_at,
        source_updated_time=row.source_updated_time,
        id=row.id,
        versions={valid_from: current},
        db_time=valid_from,
        history_loaded=False,
        stored_presence=presence,
    )


@dataclass
class StoredCompany:
    last_response_at: dt.datetime | None
    license_count: int
    settled_fingerprint: str | None
    licences: dict[tuple[str, str], Any] = field(default_factory=dict)  # rows of `licenses`


def load_stored(conn: Connection, company_ids: Sequence[int]) -> dict[int, StoredCompany]:
    """Companies with their licences' current rows (no history, no JSON)."""
    companies: dict[int, StoredCompany] = {}
    lic = License.__table__.c
    for part in slices(company_ids):
        rows = conn.execute(
            sa.select(
                Company.id,
                Company.last_response_at,
                Company.license_count,
                Company.settled_fingerprint,
            ).where(Company.id.in_(part))
        )
        for row in rows:
            companies[row.id] = StoredCompany(
                row.last_response_at, row.license_count, row.settled_fingerprint
            )
        licences = conn.execute(
            sa.select(
                lic.id,
                lic.company_id,
                lic.category,
                lic.lic_no,
                lic.content_hash,
                lic.source_updated_time,
                lic.first_seen_at,
                lic.last_seen_at,
                lic.removed_at,
            ).where(lic.company_id.in_(part))
        )
        for licence in licences:
            companies[licence.company_id].licences[(licence.category, licence.lic_no)] = licence
    return companies


def _company_state(company_id: int, stored: StoredCompany) -> CompanyState:
    state = CompanyState(company_id, stored.last_response_at, stored.license_count)
    state.settled_fingerprint = stored.settled_fingerprint
    state.licenses = {key: _stored_license(row) for key, row in stored.licences.items()}
    return state


def _needs(
    companies: Mapping[int, CompanyState], responses: Iterable[ResponseInput]
) -> tuple[dict[int, LicenseState], dict[int, LicenseState]]:
    """Stored licences that will get a newer version (content) or an older one (history)."""
    content: dict[int, LicenseState] = {}
    history: dict[int, LicenseState] = {}
    for response in responses:
        licences = companies[response.company_id].licenses
        for record in response.parsed.items:
            lic = licences.get(record.key)
            if lic is None or lic.id is None or lic.db_time is None:
                continue
            when = record.version_time
            if when > lic.db_time:
                content[lic.id] = lic
            elif when < lic.db_time:
                history[lic.id] = lic
    return content, history


def _load_history(conn: Connection, licences: Mapping[int, LicenseState]) -> None:
    v = LicenseVersion.__table__.c
    for part in slices(sorted(licences)):
        rows = conn.execute(
            sa.select(v.license_id, v.valid_from, v.valid_to, v.content_hash).where(
                v.license_id.in_(part)
            )
        )
        for row in rows:
            lic = licences[row.license_id]
            if row.valid_to is None:
                continue  # the open version: already `lic.current`
            lic.versions[row.valid_from] = Version(
                row.valid_from,
                row.content_hash,
                row.valid_to,
                persisted=True,
                stored_valid_to=row.valid_to,
            )
    for lic in licences.values():
        lic.history_loaded = True


def _load_content(conn: Connection, licences: Mapping[int, LicenseState]) -> None:
    v = LicenseVersion.__table__.c
    for part in slices(sorted(licences)):
        rows = conn.execute(
            sa.select(v.license_id, v.content).where(v.license_id.in_(part), v.valid_to.is_(None))
        )
        for row in rows:
            licences[row.license_id].current.content = row.content


def load_chunk_state(
    conn: Connection, responses: Sequence[ResponseInput]
) -> dict[int, CompanyState]:
    """The state the tracker needs to apply these responses — only for the companies they
    would change (`is_no_op` skips the rest before any state is built)."""
    by_company: dict[int, list[ResponseInput]] = defaultdict(list)
    for response in responses:
        by_company[response.company_id].append(response)
    stored = load_stored(conn, sorted(by_company))
    companies = {
        company_id: _company_state(company_id, stored[company_id])
        for company_id, own in by_company.items()
        if not is_no_op(
            stored[company_id].last_response_at,
            stored[company_id].license_count,
            stored[company_id].licences,
            own,
        )
    }
    content, history = _needs(companies, (r for r in responses if r.company_id in companies))
    _load_content(conn, content)
    _load_history(conn, history)
    return companies
