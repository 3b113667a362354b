"""Change tracking in memory (pure): apply parsed responses to a company's licence state.

This module is the contract's "Change tracking rules" and nothing else; the writer loads the
state of a chunk of companies, runs these functions and writes the difference.

- A licence seen for the first time is ``added``.
- A newer ``updated_time`` replaces the current version (``updated``: changed_fields lists every
  content field whose value differs — ``lic_name`` compared as a set, ``updated_time`` included);
  the previous version is closed at the new version's ``valid_from``.
- An older one never overwrites: if history has no version at that time it is inserted there
  and closed at the next newer version (the previous one is re-closed at it).
- The same time with different content keeps what is stored and is reported as an anomaly.
- Only a response at least as new as the newest one applied to the company
  (``companies.last_response_at``) changes presence: a licence missing from such a response that
  lists every licence (complete, or 260204) is ``removed``; a removed licence present in such a
  response (complete or partial) is ``restored`` — one event, with the changed fields if a newer
  version came with it. Invalid bodies change no presence and do not advance last_response_at.
- Versions describe content, not presence: a removed licence keeps its open version.
- ``detected_at`` of a change, ``first_seen_at``/``last_seen_at``/``removed_at`` are the
  ``fetched_at`` of the response that showed it, so a rebuild from raw reproduces them.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from pipelines.normalize.parsing import (
    CONTENT_FIELDS,
    UNKNOWN_TIME,
    LicenseRecord,
    ParsedResponse,
)


@dataclass(slots=True)
class Version:
    """One SCD2 version; ``stored_valid_to`` is what the database holds (None if new)."""

    valid_from: dt.datetime
    content_hash: str
    valid_to: dt.datetime | None
    content: dict[str, Any] | None = None
    persisted: bool = False
    stored_valid_to: dt.datetime | None = None
    record: LicenseRecord | None = None  # the parsed item a new version comes from


@dataclass(slots=True)
class LicenseState:
    """A licence as the chunk sees it: its current version, history and presence."""

    company_id: int
    key: tuple[str, str]
    current: Version
    first_seen_at: dt.datetime
    last_seen_at: dt.datetime
    removed_at: dt.datetime | None
    source_updated_time: dt.datetime | None = None
    id: int | None = None
    # Set when this chunk changed the current version: the columns and names to write.
    record: LicenseRecord | None = None
    versions: dict[dt.datetime, Version] = field(default_factory=dict)
    # Versions older than `db_time` are in `versions` only if the writer loaded the history.
    db_time: dt.datetime | None = None
    history_loaded: bool = True
    stored_presence: tuple[dt.datetime, dt.datetime, dt.datetime | None] | None = None

    @property
    def presence(self) -> tuple[dt.datetime, dt.datetime, dt.datetime | None]:
        return (self.first_seen_at, self.last_seen_at, self.removed_at)

    @property
    def is_dirty(self) -> bool:
        return self.record is not None or self.presence != self.stored_presence

    @property
    def needs_write(self) -> bool:
        """True when the licence row, its names or any of its versions must be written."""
        return self.is_dirty or any(
            not v.persisted or v.valid_to != v.stored_valid_to for v in self.versions.values()
        )


@dataclass(slots=True)
class CompanyState:
    id: int
    last_response_at: dt.datetime | None
    license_count: int
    licenses: dict[tuple[str, str], LicenseState] = field(default_factory=dict)
    stored: tuple[dt.datetime | None, int] | None = None
    settled_fingerprint: str | None = None  # as stored (normalize/settled)

    def __post_init__(self) -> None:
        if self.stored is None:
            self.stored = (self.last_response_at, self.license_count)

    def refresh_count(self) -> bool:
        """Recount current licences; True when the company row needs an update."""
        self.license_count = sum(1 for lic in self.licenses.values() if lic.removed_at is None)
        return (self.last_response_at, self.license_count) != self.stored


@dataclass(frozen=True, slots=True)
class ResponseInput:
    raw_response_id: int
    company_id: int
    fetched_at: dt.datetime
    parsed: ParsedResponse


@dataclass(slots=True)
class ChangeEvent:
    license: LicenseState
    change_type: str
    changed_fields: list[str] | None
    old_values: dict[str, Any] | None
    new_values: dict[str, Any] | None
    source_updated_time: dt.datetime | None
    detected_at: dt.datetime
    raw_response_id: int


@dataclass
class TrackingLog:
    """What applying responses produced besides the state itself."""

    changes: list[ChangeEvent] = field(default_factory=list)
    anomalies: list[dict[str, Any]] = field(default_factory=list)


Diff = tuple[list[str], dict[str, Any], dict[str, Any]]


def diff_content(old: dict[str, Any], new: dict[str, Any]) -> Diff:
    """Fields whose values differ (lic_name as a set), with their old and new values."""
    fields = [
        name
        for name in CONTENT_FIELDS
        if (
            set(old.get(name) or ()) != set(new.get(name) or ())
            if name == "lic_name"
            else old.get(name) != new.get(name)
        )
    ]
    return fields, {f: old.get(f) for f in fields}, {f: new.get(f) for f in fields}


def _new_version(record: LicenseRecord) -> Version:
    return Version(record.version_time, record.content_hash, None, record.content, record=record)


def new_license(company_id: int, record: LicenseRecord, seen_at: dt.datetime) -> LicenseState:
    version = _new_version(record)
    return LicenseState(
        company_id=company_id,
        key=record.key,
        current=version,
        first_seen_at=seen_at,
        last_seen_at=seen_at,
        removed_at=None,
        source_updated_time=record.updated_time,
        record=record,
        versions={version.valid_from: version},
    )


def _insert_version(lic: LicenseState, version: Version) -> None:
    """Put a version into the history and re-close its neighbours (valid_to = next valid_from)."""
    lic.versions[version.valid_from] = version
    times = sorted(lic.versions)
    at = times.index(version.valid_from)
    version.valid_to = times[at + 1] if at + 1 < len(times) else None
    if at > 0:
        lic.versions[times[at - 1]].valid_to = version.valid_from


def _anomaly(lic: LicenseState, record: LicenseRecord, fetched_at: dt.datetime) -> dict[str, Any]:
    return {
        "company_id": lic.company_id,
        "category": lic.key[0],
        "lic_no": lic.key[1],
        "updated_time": record.content.get("updated_time"),
        "fetched_at": fetched_at.astimezone(dt.UTC).isoformat(),
    }


def apply_version(
    lic: LicenseState, record: LicenseRecord, fetched_at: dt.datetime, log: TrackingLog
) -> Diff | None:
    """Apply one incoming version; returns the diff when it became the current version."""
    when = record.version_time
    if when > lic.current.valid_from:
        if lic.current.content is None:
            raise RuntimeError(f"content of licence {lic.id} not loaded before a newer version")
        diff = diff_content(lic.current.content, record.content)
        version = _new_version(record)
        _insert_version(lic, version)
        lic.current, lic.record = version, record
        lic.source_updated_time = record.updated_time
        return diff
    known = lic.versions.get(when)
    if known is None and not lic.history_loaded and lic.db_time is not None and when <= lic.db_time:
        raise RuntimeError(f"history of licence {lic.id} not loaded before an older version")
    if known is None:
        _insert_version(lic, _new_version(record))
    elif known.content_hash != record.content_hash:
        log.anomalies.append(_anomaly(lic, record, fetched_at))
    return None


def _event(
    lic: LicenseState,
    change_type: str,
    response: ResponseInput,
    diff: Diff | None = None,
    new_values: dict[str, Any] | None = None,
) -> ChangeEvent:
    fields, old, new = diff if diff else (None, None, new_values)
    return ChangeEvent(
        license=lic,
        change_type=change_type,
        changed_fields=fields,
        old_values=old,
        new_values=new,
        source_updated_time=lic.source_updated_time,
        detected_at=response.fetched_at,
        raw_response_id=response.raw_response_id,
    )


def _apply_item(
    company: CompanyState,
    record: LicenseRecord,
    response: ResponseInput,
    changes_presence: bool,
    log: TrackingLog,
) -> None:
    fetched_at = response.fetched_at
    lic = company.licenses.get(record.key)
    if lic is None:
        lic = company.licenses[record.key] = new_license(company.id, record, fetched_at)
        log.changes.append(_event(lic, "added", response, new_values=record.content))
        return
    diff = apply_version(lic, record, fetched_at, log)
    lic.first_seen_at = min(lic.first_seen_at, fetched_at)
    lic.last_seen_at = max(lic.last_seen_at, fetched_at)
    if changes_presence and lic.removed_at is not None:
        lic.removed_at = None
        log.changes.append(_event(lic, "restored", response, diff))
    elif diff is not None:
        log.changes.append(_event(lic, "updated", response, diff))


def apply_response(company: CompanyState, response: ResponseInput, log: TrackingLog) -> None:
    """Apply one parsed response of this company, in fetched order, to its state."""
    parsed = response.parsed
    newest = company.last_response_at is None or response.fetched_at >= company.last_response_at
    changes_presence = newest and parsed.is_presence_evidence
    for record in parsed.items:
        _apply_item(company, record, response, changes_presence, log)
    if changes_presence and parsed.lists_every_licence:
        listed = {record.key for record in parsed.items}
        for key, lic in company.licenses.items():
            if key not in listed and lic.removed_at is None:
                lic.removed_at = response.fetched_at
                log.changes.append(_event(lic, "removed", response))
    if changes_presence:
        company.last_response_at = response.fetched_at


def settles(company: CompanyState, response: ResponseInput) -> bool:
    """True when, after applying it, the company's current licences are exactly this
    response's items as their current versions, it set ``last_response_at`` and parsing it
    noticed nothing. Applying the same body again, fetched later, then only moves
    ``last_seen_at`` of the current licences and ``last_response_at`` — the identical-answer
    shortcut's precondition (normalize/settled)."""
    parsed, issues = response.parsed, response.parsed.issues
    if not parsed.is_presence_evidence or company.last_response_at != response.fetched_at:
        return False
    if (
        issues.drift
        or issues.unparseable
        or issues.missing_required
        or issues.implausible
        or issues.empty_success
        or issues.problem is not None
    ):
        return False
    current = {key: lic for key, lic in company.licenses.items() if lic.removed_at is None}
    keys = [record.key for record in parsed.items]
    if len(keys) != len(current) or set(keys) != current.keys():
        return False
    return all(
        current[record.key].current.content_hash == record.content_hash
        and current[record.key].current.valid_from == record.version_time
        for record in parsed.items
    )


class StoredLicence(Protocol):
    """What the no-op test reads of a stored licence (a row of `licenses`)."""

    content_hash: str
    source_updated_time: dt.datetime | None
    first_seen_at: dt.datetime
    last_seen_at: dt.datetime
    removed_at: dt.datetime | None


def is_no_op(
    last_response_at: dt.datetime | None,
    license_count: int,
    stored: Mapping[tuple[str, str], StoredLicence],
    responses: Sequence[ResponseInput],
) -> bool:
    """True when applying these responses (in order) to the stored state would change nothing:
    every item is the stored current version of a licence that was seen at that time, no
    presence changes and last_response_at stays. Lets the writer skip unchanged companies
    without building their state."""
    current = {key for key, lic in stored.items() if lic.removed_at is None}
    if len(current) != license_count:
        return False
    for response in responses:
        parsed, fetched_at = response.parsed, response.fetched_at
        changes_presence = parsed.is_presence_evidence and (
            last_response_at is None or fetched_at >= last_response_at
        )
        if changes_presence and fetched_at != last_response_at:
            return False
        for record in parsed.items:
            lic = stored.get(record.key)
            if (
                lic is None
                or lic.content_hash != record.content_hash
                or (lic.source_updated_time or UNKNOWN_TIME) != record.version_time
                or not lic.first_seen_at <= fetched_at <= lic.last_seen_at
                or (changes_presence and lic.removed_at is not None)
            ):
                return False
        if (
            changes_presence
            and parsed.lists_every_licence
            and ({record.key for record in parsed.items} != current)
        ):
            return False
    return True
