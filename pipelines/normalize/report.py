"""NormalizeReport: what one normalization did, for asset metadata and checks."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from dataclasses import dataclass, field, fields
from typing import Any

from pipelines.normalize.parsing import ParsedResponse


@dataclass
class NormalizeReport:
    """Counts of one run. ``anomalies`` lists same-updated_time-different-content licences
    ({company_id, category, lic_no, updated_time, fetched_at}); they are not in license_changes.
    It also lists the hostile-answer anomalies (docs/architecture.md#hostile-answers), each with a
    ``kind``: ``implausible_updated_time`` (an item not applied: {company_id, category, lic_no,
    updated_time, fetched_at}) and ``empty_success`` (error_code 0 with no items, no removal
    inferred: {company_id, fetched_at}); ``implausible_times``/``empty_success`` count them, and
    ``hostile`` counts invalid bodies by what was wrong (too deep, over the cap, wrong types).
    """

    responses: int = 0
    # of which applied by the identical-answer shortcut, without parsing (normalize/settled)
    responses_unchanged: int = 0
    by_status: Counter[str] = field(default_factory=Counter)
    rows_inserted: Counter[str] = field(default_factory=Counter)
    rows_updated: Counter[str] = field(default_factory=Counter)
    rows_deleted: Counter[str] = field(default_factory=Counter)
    changes: Counter[str] = field(default_factory=Counter)
    anomalies: list[dict[str, Any]] = field(default_factory=list)
    drift: Counter[str] = field(default_factory=Counter)
    missing_required: int = 0
    unparseable: Counter[str] = field(default_factory=Counter)
    implausible_times: int = 0
    empty_success: int = 0
    hostile: Counter[str] = field(default_factory=Counter)
    companies: int = 0  # companies whose raw responses were read and applied
    companies_changed: int = 0  # the others were skipped early: applying changed nothing
    # renormalize (no rebuild): companies not read at all, their stored fingerprint matched
    companies_skipped: int = 0
    chunks: int = 0
    workers: int = 1  # processes that applied the chunks (`parallel`)
    seconds: float = 0.0

    def count_response(
        self,
        parsed: ParsedResponse,
        company_id: int | None = None,
        fetched_at: dt.datetime | None = None,
    ) -> None:
        issues = parsed.issues
        self.responses += 1
        self.by_status[parsed.status] += 1
        self.drift.update(issues.drift)
        self.unparseable.update(issues.unparseable)
        self.missing_required += issues.missing_required
        if issues.problem is not None:
            self.hostile[issues.problem] += 1
        if not (issues.implausible or issues.empty_success):
            return
        when = None if fetched_at is None else fetched_at.isoformat()
        for item in issues.implausible:
            self.anomalies.append(
                {"kind": "implausible_updated_time", "company_id": company_id, **item}
                | {"fetched_at": when}
            )
        self.implausible_times += len(issues.implausible)
        if issues.empty_success:
            self.empty_success += 1
            self.anomalies.append(
                {"kind": "empty_success", "company_id": company_id, "fetched_at": when}
            )

    def merge(self, other: NormalizeReport) -> None:
        """Add another report's counts (a chunk applied by a worker process) to this one."""
        for item in fields(self):
            mine, theirs = getattr(self, item.name), getattr(other, item.name)
            if isinstance(mine, Counter | list):
                mine += theirs
            elif item.name not in ("seconds", "workers"):
                setattr(self, item.name, mine + theirs)

    @property
    def rows(self) -> dict[str, dict[str, int]]:
        """{table: {"inserted"|"updated"|"deleted": rows}} for the tables this run wrote."""
        verbs = {
            "inserted": self.rows_inserted,
            "updated": self.rows_updated,
            "deleted": self.rows_deleted,
        }
        tables = sorted({t for counts in verbs.values() for t, n in counts.items() if n})
        return {t: {verb: counts[t] for verb, counts in verbs.items() if counts[t]} for t in tables}

    @property
    def rows_written(self) -> int:
        return (
            sum(self.rows_inserted.values())
            + sum(self.rows_updated.values())
            + sum(self.rows_deleted.values())
        )

    def as_dict(self) -> dict[str, Any]:
        """Plain JSON-able dict (Counters become dicts without zero counts) for metadata."""
        data: dict[str, Any] = {}
        for item in fields(self):
            value = getattr(self, item.name)
            data[item.name] = (
                {k: n for k, n in value.items() if n} if isinstance(value, Counter) else value
            )
        data["rows_written"] = self.rows_written
        return data
