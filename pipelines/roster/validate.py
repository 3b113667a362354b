"""Roster rows → companies to keep (`RosterEntry`) and rows sent back with a reason.

Everything here is pure except `load_roster`, which ties the reader to the rules:
- a row needs a company name or a valid identifier; identifiers given must be valid;
- duplicates (same 统一社会信用代码, or names with the same match key) merge into the first
  occurrence, which takes a missing 统一社会信用代码 / 注册号 from the later row;
- a name seen with two different 统一社会信用代码 (or one code with two names) is a conflict
  the roster's owner must settle: every row involved is rejected, naming the other row.
"""

from __future__ import annotations

import gc
import threading
from collections import Counter
from collections.abc import Iterable, Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass
from pathlib import Path

from pipelines.roster.identifiers import (
    REGNO_LENGTH,
    USCC_ALPHABET,
    USCC_LENGTH,
    clean_name,
    is_valid_regno15,
    is_valid_uscc,
    match_key,
    normalize_regno,
    normalize_uscc,
    regno_check_digit,
    uscc_check_character,
)
from pipelines.roster.reader import (
    RosterFileError,
    RosterLimits,
    RosterRow,
    read_source,
    roster_sources,
)
from pipelines.shards import shard_of

MAX_NAME_LENGTH = 200
_SHOWN = 40  # longest value quoted in a reason


@dataclass(frozen=True, slots=True)
class RosterEntry:
    """A company the roster asks for, ready for `companies`."""

    name: str
    uscc: str | None
    reg_no: str | None
    match_key: str
    query: str
    shard: int
    source: str
    row_number: int


@dataclass(frozen=True, slots=True)
class RosterReject:
    """A row (or a whole file, row_number None) that was not used, and why.

    `kind` is a stable short code for summaries; `reason` is the sentence a person reads.
    """

    source: str
    row_number: int | None
    raw_row: dict[str, str] | None
    reason: str
    kind: str


@dataclass(frozen=True)
class RosterResult:
    entries: list[RosterEntry]
    rejects: list[RosterReject]
    sources: list[str]
    complete: bool  # every file was read to its end: safe to deactivate companies not listed
    stats: dict[str, int]

    @property
    def reasons(self) -> dict[str, int]:
        return dict(Counter(reject.kind for reject in self.rejects))


@dataclass(slots=True)
class _Candidate:
    """An accepted row while duplicates are merged; mutable only inside `_Deduper`."""

    row: RosterRow
    name: str  # cleaned; "" when the row gives identifiers only
    uscc: str | None
    reg_no: str | None
    name_key: str | None = None
    absorbed: list[_Candidate] | None = None  # later rows merged into this one

    def __post_init__(self) -> None:
        self.name_key = match_key(self.name) if self.name else None

    def match_keys(self) -> list[tuple[str, str]]:
        keys = [("uscc", self.uscc)] if self.uscc else []
        return [*keys, ("name", self.name_key)] if self.name_key else keys


# --- one row ------------------------------------------------------------------------------


def _shown(value: str) -> str:
    value = clean_name(value)
    return value if len(value) <= _SHOWN else value[:_SHOWN] + "…"


def uscc_problem(raw: str, code: str) -> tuple[str, str] | None:
    """(kind, reason) when `code` (normalised from `raw`) is not a valid USCC, else None."""
    if is_valid_uscc(code):  # the common case; a valid code passes every check below
        return None
    shown = _shown(raw)
    if len(code) != USCC_LENGTH:
        return "uscc_length", (
            f"统一社会信用代码 {shown} has {len(code)} characters; it must have 18"
        )
    bad = sorted({ch for ch in code if ch not in USCC_ALPHABET})
    if bad:
        return "uscc_characters", (
            f"统一社会信用代码 {shown} contains {', '.join(bad)}, which a "
            "统一社会信用代码 never uses (no I, O, S, V, Z)"
        )
    expected = uscc_check_character(code[:17])
    return "uscc_check", (
        f"统一社会信用代码 {shown} has a wrong check character (expected {expected})"
    )


def regno_problem(raw: str, code: str) -> tuple[str, str] | None:
    """(kind, reason) when `code` is not a valid 15-digit 注册号, else None."""
    if len(code) != REGNO_LENGTH or not (code.isascii() and code.isdigit()):
        return "regno_format", f"注册号 {_shown(raw)} is not a 15-digit 注册号"
    if not is_valid_regno15(code):
        expected = regno_check_digit(code[:14])
        return "regno_check", f"注册号 {_shown(raw)} has a wrong check digit (expected {expected})"
    return None


def check_row(row: RosterRow) -> _Candidate | RosterReject:
    """Apply the per-row rules: a candidate company, or a reject with its reason."""

    def reject(kind: str, reason: str) -> RosterReject:
        return RosterReject(row.source, row.row_number, row.raw_row, reason, kind)

    if row.is_blank:
        if row.span == 1:
            return reject("empty_row", "empty row")
        last = row.row_number + row.span - 1
        return reject("empty_row", f"{row.span:,} empty rows (rows {row.row_number} to {last})")
    name = clean_name(row.name)
    uscc = normalize_uscc(row.uscc) or None
    reg_no = normalize_regno(row.reg_no) or None
    if reg_no and len(reg_no) == USCC_LENGTH and is_valid_uscc(reg_no) and uscc in (None, reg_no):
        uscc, reg_no = reg_no, None  # a 统一社会信用代码 typed into the 注册号 column
    problem = (uscc and uscc_problem(row.uscc, uscc)) or (
        reg_no and regno_problem(row.reg_no, reg_no)
    )
    if problem:
        return reject(*problem)
    if len(name) > MAX_NAME_LENGTH:
        return reject(
            "name_too_long",
            f"company name is {len(name)} characters long; longest accepted is {MAX_NAME_LENGTH}",
        )
    if not (name or uscc or reg_no):
        return reject("no_name", "no company name and no valid 统一社会信用代码")
    return _Candidate(row, name, uscc, reg_no)


# --- duplicates and conflicts -------------------------------------------------------------


def _where(candidate: _Candidate, other: _Candidate) -> str:
    """`row 7`, or `row 7 of b.csv` when the two rows come from different files."""
    row = candidate.row
    same_file = row.source == other.row.source
    return f"row {row.row_number}" + ("" if same_file else f" of {row.source}")


def _conflict(old: _Candidate, new: _Candidate) -> tuple[tuple[str, str], str] | None:
    """The shared key and the reason when `old` and `new` cannot be the same company."""
    first, second = _where(old, new), _where(new, old)
    if (
        old.name_key
        and old.name_key == new.name_key
        and old.uscc
        and new.uscc
        and old.uscc != new.uscc
    ):
        return ("name", old.name_key), (
            f"name {_shown(new.name)} appears with two different 统一社会信用代码: "
            f"{first} has {old.uscc}, {second} has {new.uscc}"
        )
    if (
        old.uscc
        and old.uscc == new.uscc
        and old.name_key
        and new.name_key
        and old.name_key != new.name_key
    ):
        return ("uscc", old.uscc), (
            f"统一社会信用代码 {new.uscc} appears with two different company names: "
            f"{first} has {_shown(old.name)}, {second} has {_shown(new.name)}"
        )
    return None


class _Deduper:
    """Merges candidates that are one company; rejects those that contradict each other."""

    def __init__(self) -> None:
        self.kept: list[_Candidate | None] = []
        self.index: dict[tuple[str, str], int] = {}
        self.conflicts: dict[tuple[str, str], str] = {}
        self.rejects: list[RosterReject] = []
        self.merged = 0

    def add(self, new: _Candidate) -> None:
        keys = new.match_keys()
        if self.conflicts:
            settled = next((self.conflicts[k] for k in keys if k in self.conflicts), None)
            if settled:
                self._reject(new, settled)
                return
        index = self.index
        found = [index[k] for k in keys if k in index]
        if not found:  # a company not seen before: the common case
            position = len(self.kept)
            self.kept.append(new)
            for key in keys:
                index[key] = position
            return
        hits = sorted(set(found))
        for position in hits:
            old = self.kept[position]
            assert old is not None
            conflict = _conflict(old, new)
            if conflict:
                key, reason = conflict
                self.conflicts[key] = reason
                self._drop(position)
                self._reject(old, reason)
                self._reject(new, reason)
                return
        target = hits[0]
        for position in hits[1:]:
            other = self.kept[position]
            assert other is not None
            self._drop(position)
            self._merge(target, other)
        self._merge(target, new)

    def entries(self) -> Iterator[_Candidate]:
        return (c for c in self.kept if c is not None)

    def _keep(self, position: int, candidate: _Candidate) -> None:
        for key in candidate.match_keys():
            self.index[key] = position

    def _drop(self, position: int) -> None:
        candidate = self.kept[position]
        assert candidate is not None
        for key in candidate.match_keys():
            self.index.pop(key, None)
        self.kept[position] = None

    def _merge(self, position: int, later: _Candidate) -> None:
        first = self.kept[position]
        assert first is not None
        first.uscc = first.uscc or later.uscc
        first.reg_no = first.reg_no or later.reg_no
        if not first.name:
            first.name, first.name_key = later.name, later.name_key
        absorbed = [later, *(later.absorbed or ())]
        first.absorbed = (first.absorbed or []) + absorbed
        self.merged += len(absorbed)
        self._keep(position, first)

    def _reject(self, candidate: _Candidate, reason: str) -> None:
        absorbed = candidate.absorbed or []
        self.merged -= len(absorbed)
        for row in [candidate.row, *(c.row for c in absorbed)]:
            self.rejects.append(
                RosterReject(row.source, row.row_number, row.raw_row, reason, "conflict")
            )


def to_entry(candidate: _Candidate) -> RosterEntry:
    """The company of a candidate: a valid USCC is its key and its query, else its name."""
    name = candidate.name or candidate.uscc or candidate.reg_no or ""
    # name_key is match_key(candidate.name) (kept in step by the merge), so computed once.
    key = candidate.uscc or candidate.name_key or match_key(name)
    query = candidate.uscc or name
    row = candidate.row
    return RosterEntry(
        name,
        candidate.uscc,
        candidate.reg_no,
        key,
        query,
        shard_of(key),
        row.source,
        row.row_number,
    )


@dataclass(frozen=True)
class Validated:
    entries: list[RosterEntry]
    rejects: list[RosterReject]
    rows_read: int
    duplicates_merged: int


def validate_rows(rows: Iterable[RosterRow]) -> Validated:
    """Entries (in roster order of first occurrence) and rejects for a stream of rows."""
    deduper = _Deduper()
    rejects: list[RosterReject] = []
    rows_read = 0
    for row in rows:
        rows_read += row.span
        checked = check_row(row)
        if isinstance(checked, RosterReject):
            rejects.append(checked)
        else:
            deduper.add(checked)
    entries = [to_entry(c) for c in deduper.entries()]
    return Validated(entries, rejects + deduper.rejects, rows_read, deduper.merged)


# --- the whole roster ---------------------------------------------------------------------

_pauses = 0  # how many threads are inside _collector_paused()
_pauses_lock = threading.Lock()
_collector_was_enabled = False


@contextmanager
def _collector_paused() -> Iterator[None]:
    """Run a block with Python's cyclic garbage collector paused, then restore it.

    A roster being read is a few long-lived objects per row (rows, candidates, entries), none
    of them in a reference cycle. The collector's full passes, set off by that growth, each
    walk every object the process holds - Dagster's and SQLAlchemy's included - and found
    nothing: about a third of the time to load a 200,000-row roster.
    Reference counting still frees everything as usual; a cycle made meanwhile is collected
    later. Nestable and thread-safe: the collector is paused while any thread is inside, and
    left as it was found (a process that turned it off keeps it off).
    """
    global _pauses, _collector_was_enabled
    with _pauses_lock:
        if _pauses == 0:
            _collector_was_enabled = gc.isenabled()
            gc.disable()
        _pauses += 1
    try:
        yield
    finally:
        with _pauses_lock:
            _pauses -= 1
            if _pauses == 0 and _collector_was_enabled:
                gc.enable()


def _too_many_rows(number: int, limit: int) -> str:
    return (
        f"row {number}: the roster has more than {limit:,} rows with data, the most "
        f"ZIZHI_ROSTER_MAX_ROWS={limit} allows; this row and the rest of the file were not read"
    )


def load_roster(
    path: str | Path, *, sheet: str | None = None, limits: RosterLimits | None = None
) -> RosterResult:
    """Read and validate a roster file or folder; a file that fails becomes a reject.

    Raises RosterFileError only when there is nothing to read (missing path, empty folder).
    `complete` is False when any file could not be read to its end, the row cap included.
    """
    with _collector_paused():
        return _load(path, sheet, limits or RosterLimits())


def _load(path: str | Path, sheet: str | None, limits: RosterLimits) -> RosterResult:
    sources = roster_sources(path, sheet)
    file_rejects: list[RosterReject] = []

    def rows() -> Iterator[RosterRow]:
        data_rows = 0
        for source in sources:
            try:
                with closing(read_source(source, limits)) as source_rows:
                    for row in source_rows:
                        data_rows += not row.is_blank
                        if data_rows > limits.max_rows:
                            raise RosterFileError(
                                source.label, _too_many_rows(row.row_number, limits.max_rows)
                            )
                        yield row
            except RosterFileError as error:
                file_rejects.append(RosterReject(source.label, None, None, str(error), "file"))

    validated = validate_rows(rows())
    order = {source.label: position for position, source in enumerate(sources)}
    rejects = sorted(
        file_rejects + validated.rejects, key=lambda r: (order.get(r.source, 0), r.row_number or 0)
    )
    stats = {
        "files": len(sources),
        "files_failed": len(file_rejects),
        "total_rows": validated.rows_read,
        "accepted": len(validated.entries),
        "duplicates_merged": validated.duplicates_merged,
        "rejected": len(rejects),
    }
    return RosterResult(
        validated.entries,
        rejects,
        [s.label for s in sources],
        complete=not file_rejects,
        stats=stats,
    )
