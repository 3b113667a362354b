"""Pure parsing of ConLicByName bodies: values → typed values, items → records (no I/O).

Rules (DESIGN.md "Parsing rules"):

- Dates accept ``YYYY-MM-DD``, ``YYYY-MM-DD HH:MM:SS``, ``YYYY/MM/DD``, ``YYYYMMDD`` and epoch
  milliseconds (int or digit string; the instant is read in Asia/Shanghai, where it is midnight).
  Blank/null is ``None``; ``长期``/``永久`` mean open-ended; anything else is ``None`` and counted
  as unparseable under the field's name.
- ``created_time``/``updated_time`` become aware datetimes on the Asia/Shanghai wall clock
  (a date alone means 00:00 there).
- ``lic_name`` may be an array, a single string, null or missing; names are trimmed, empty ones
  dropped, and a name repeated within one array keeps its first position only.
- Text fields are trimmed; an empty text is ``None``.

**Key of a blank lic_no.** The natural key of a licence is (company, category, lic_no). When
``lic_no`` is blank the licence gets ``"~" + sha256(category + "\\x1f" + "\\x1f".join(sorted
names))[:16]`` (hex) as its lic_no: deterministic, stable across days, replays and re-orders of
``lic_name``; a real certificate number never starts with ``~``. (If such a licence's set of names
changes, it is a different key: the old one is removed and the new one added.)

**Content hash.** sha256 of the canonical JSON (sorted keys, compact, UTF-8) of the parsed
content — category, lic_no, issue_org, lic_scope, url, validity_start, validity_end, open_ended,
created_time, updated_time and the SORTED names — so a reorder of ``lic_name`` is not a change.

**Version time.** A licence version is ordered by its ``updated_time``; a missing or unparseable
``updated_time`` sorts as ``UNKNOWN_TIME`` (1970-01-01 00:00 Asia/Shanghai): such a version never
overwrites one with a known time.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
from collections import Counter
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Literal
from zoneinfo import ZoneInfo

SHANGHAI = ZoneInfo("Asia/Shanghai")
UNKNOWN_TIME = dt.datetime(1970, 1, 1, tzinfo=SHANGHAI)
NOT_FOUND_CODE = 260204

ResponseStatus = Literal["complete", "partial", "not_found", "invalid"]
RESPONSE_STATUSES: tuple[ResponseStatus, ...] = ("complete", "partial", "not_found", "invalid")

TOP_LEVEL_FIELDS = frozenset({"error_code", "reason", "result", "sign"})
RESULT_FIELDS = frozenset({"total", "items"})
ITEM_FIELDS = frozenset(
    {
        "category",
        "lic_no",
        "lic_name",
        "issue_org",
        "validity_start",
        "validity_end",
        "lic_scope",
        "url",
        "created_time",
        "updated_time",
    }
)
# The fields of a licence's content, in the order change rows list them.
CONTENT_FIELDS = (
    "category",
    "lic_no",
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
OPEN_ENDED_WORDS = frozenset({"长期", "永久", "长期有效", "永久有效"})

_DATE_RE = re.compile(
    r"(\d{4})[-/](\d{1,2})[-/](\d{1,2})(?:[ T](\d{1,2}):(\d{2})(?::(\d{2}))?(?:\.\d+)?)?"
)
_COMPACT_DATE_RE = re.compile(r"\d{8}")
_EPOCH_MS_RE = re.compile(r"-?\d{9,}")
_GRADE_RE = re.compile(
    r"特级|不分等级|暂定级|[一二三壹贰叁]级|[甲乙丙丁](?:[（(][ⅠⅡⅢⅣIiVv]+[）)])?级"
)
_GRADE_FOLD = {"壹级": "一级", "贰级": "二级", "叁级": "三级"}


class Unparseable(ValueError):
    """A value that is present but matches no accepted form."""


# ---------------------------------------------------------------------------- dates and times


@dataclass(frozen=True, slots=True)
class Validity:
    """A parsed validity date: the date, whether it is open-ended, whether it failed to parse."""

    value: dt.date | None = None
    open_ended: bool = False
    unparseable: bool = False


def _from_epoch_ms(ms: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(ms / 1000, tz=SHANGHAI)


@lru_cache(maxsize=65536)
def _parse_text_datetime(text: str) -> dt.datetime:
    """A non-blank string → Asia/Shanghai datetime; raises Unparseable."""
    try:
        if match := _DATE_RE.fullmatch(text):
            y, mo, d, h, mi, s = (int(g) if g else 0 for g in match.groups())
            return dt.datetime(y, mo, d, h, mi, s, tzinfo=SHANGHAI)
        if _COMPACT_DATE_RE.fullmatch(text):
            return dt.datetime(int(text[:4]), int(text[4:6]), int(text[6:]), tzinfo=SHANGHAI)
        if _EPOCH_MS_RE.fullmatch(text):
            return _from_epoch_ms(int(text))
    except (ValueError, OverflowError, OSError) as exc:
        raise Unparseable(text) from exc
    raise Unparseable(text)


def parse_datetime(value: Any) -> dt.datetime | None:
    """created_time/updated_time → aware Asia/Shanghai datetime; None when blank.

    Raises Unparseable for a present value of no accepted form.
    """
    if value is None or isinstance(value, bool):
        if isinstance(value, bool):
            raise Unparseable(repr(value))
        return None
    if isinstance(value, int | float):
        if isinstance(value, float) and not value.is_integer():
            raise Unparseable(repr(value))
        try:
            return _from_epoch_ms(int(value))
        except (ValueError, OverflowError, OSError) as exc:
            raise Unparseable(repr(value)) from exc
    text = str(value).strip()
    return _parse_text_datetime(text) if text else None


def parse_validity(value: Any, *, allow_open_ended: bool = True) -> Validity:
    """validity_start/validity_end → Validity (date, open-ended flag, unparseable flag)."""
    if isinstance(value, str) and value.strip() in OPEN_ENDED_WORDS:
        return Validity(open_ended=True) if allow_open_ended else Validity(unparseable=True)
    try:
        moment = parse_datetime(value)
    except Unparseable:
        return Validity(unparseable=True)
    return Validity(value=moment.date() if moment else None)


# ---------------------------------------------------------------------------- names and grades


def parse_names(value: Any) -> tuple[str, ...]:
    """lic_name (array, single string, null or missing) → trimmed, non-empty, unique names."""
    if value is None:
        return ()
    raw = value if isinstance(value, list) else [value]
    names = (str(v).strip() for v in raw if v is not None)
    return tuple(dict.fromkeys(n for n in names if n))


@lru_cache(maxsize=65536)
def grade_of(name: str) -> str | None:
    """The LAST grade word of a qualification name, folded (壹级 → 一级, 甲（Ⅰ）级 → 甲级)."""
    matches = _GRADE_RE.findall(name)
    if not matches:
        return None
    word = matches[-1]
    if word[0] in "甲乙丙丁":
        return word[0] + "级"
    return _GRADE_FOLD.get(word, word)


def blank_lic_no_key(category: str, names: tuple[str, ...]) -> str:
    """The documented deterministic lic_no of a licence whose lic_no is blank."""
    material = "\x1f".join([category, *sorted(names)])
    return "~" + hashlib.sha256(material.encode("utf-8")).hexdigest()[:16]


# ---------------------------------------------------------------------------- items


@dataclass(frozen=True, slots=True)
class LicenseRecord:
    """One parsed licence item: typed fields, its JSON content and the content hash."""

    category: str
    lic_no: str
    names: tuple[str, ...]
    issue_org: str | None
    lic_scope: str | None
    url: str | None
    validity_start: dt.date | None
    validity_end: dt.date | None
    open_ended: bool
    created_time: dt.datetime | None
    updated_time: dt.datetime | None
    content: dict[str, Any]
    content_hash: str

    @property
    def key(self) -> tuple[str, str]:
        return (self.category, self.lic_no)

    @property
    def version_time(self) -> dt.datetime:
        """When this version became valid at the source (its updated_time, or UNKNOWN_TIME)."""
        return self.updated_time or UNKNOWN_TIME


def _text(value: Any) -> str | None:
    if value is None:
        return None
    text = str(value).strip()
    return text or None


def _iso(value: dt.date | None) -> str | None:
    return value.isoformat() if value is not None else None


def content_of(fields: dict[str, Any]) -> tuple[dict[str, Any], str]:
    """JSON content (names in given order) and hash (names sorted) of a licence's typed fields."""
    content = {
        name: _iso(value) if isinstance(value, dt.date) else value
        for name, value in fields.items()
    }
    content["lic_name"] = list(fields["lic_name"])
    canonical = dict(content, lic_name=sorted(content["lic_name"]))
    blob = json.dumps(canonical, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return content, hashlib.sha256(blob.encode("utf-8")).hexdigest()


@dataclass
class ParseIssues:
    """What parsing noticed: unknown fields, missing required fields, unparseable values."""

    drift: Counter[str] = field(default_factory=Counter)
    unparseable: Counter[str] = field(default_factory=Counter)
    missing_required: int = 0


def _time_field(item: dict[str, Any], name: str, issues: ParseIssues) -> dt.datetime | None:
    try:
        return parse_datetime(item.get(name))
    except Unparseable:
        issues.unparseable[name] += 1
        return None


def _validity_field(item: dict[str, Any], name: str, issues: ParseIssues) -> Validity:
    validity = parse_validity(item.get(name), allow_open_ended=name == "validity_end")
    if validity.unparseable:
        issues.unparseable[name] += 1
    return validity


def parse_item(item: Any, issues: ParseIssues) -> LicenseRecord | None:
    """One element of result.items → LicenseRecord, or None (counted) without a category."""
    if not isinstance(item, dict) or not _text(item.get("category")):
        issues.missing_required += 1
        return None
    for unknown in item.keys() - ITEM_FIELDS:
        issues.drift[f"items[].{unknown}"] += 1
    category = _text(item["category"]) or ""
    names = parse_names(item.get("lic_name"))
    start = _validity_field(item, "validity_start", issues)
    end = _validity_field(item, "validity_end", issues)
    typed: dict[str, Any] = {
        "category": category,
        "lic_no": _text(item.get("lic_no")) or blank_lic_no_key(category, names),
        "lic_name": names,
        "issue_org": _text(item.get("issue_org")),
        "lic_scope": _text(item.get("lic_scope")),
        "url": _text(item.get("url")),
        "validity_start": start.value,
        "validity_end": end.value,
        "open_ended": end.open_ended,
        "created_time": _time_field(item, "created_time", issues),
        "updated_time": _time_field(item, "updated_time", issues),
    }
    content, digest = content_of(typed)
    typed["names"] = typed.pop("lic_name")
    return LicenseRecord(**typed, content=content, content_hash=digest)


# ---------------------------------------------------------------------------- responses


@dataclass
class ParsedResponse:
    """A whole body: its status, the licences it carries and what parsing noticed."""

    status: ResponseStatus
    items: list[LicenseRecord]
    issues: ParseIssues
    total: int | None = None

    @property
    def lists_every_licence(self) -> bool:
        """True when absence from this response means the licence is gone (removals allowed)."""
        return self.status in ("complete", "not_found") and self.issues.missing_required == 0

    @property
    def is_presence_evidence(self) -> bool:
        """True for answers the API gave about this company (not invalid bodies)."""
        return self.status != "invalid"


def _error_code(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value.strip())
    return None


def _total(value: Any) -> int | None:
    code = _error_code(value)  # same shape: int or digit string
    return code if code is not None and code >= 0 else None


def _invalid(issues: ParseIssues, items: list[LicenseRecord] | None = None) -> ParsedResponse:
    return ParsedResponse("invalid", items or [], issues)


def parse_response(body: str | bytes) -> ParsedResponse:
    """A raw body → ParsedResponse. Never raises: a body it cannot use is ``invalid``."""
    issues = ParseIssues()
    try:
        data = json.loads(body)
    except (ValueError, TypeError):
        return _invalid(issues)
    if not isinstance(data, dict):
        issues.missing_required += 1
        return _invalid(issues)
    for unknown in data.keys() - TOP_LEVEL_FIELDS:
        issues.drift[unknown] += 1
    code = _error_code(data.get("error_code"))
    if code == NOT_FOUND_CODE:
        return ParsedResponse("not_found", [], issues)
    if code != 0:
        return _invalid(issues)
    result = data.get("result")
    if not isinstance(result, dict) or not isinstance(result.get("items"), list):
        issues.missing_required += 1
        return _invalid(issues)
    for unknown in result.keys() - RESULT_FIELDS:
        issues.drift[f"result.{unknown}"] += 1
    raw_items = result["items"]
    items = [r for r in (parse_item(i, issues) for i in raw_items) if r is not None]
    total = _total(result.get("total"))
    return ParsedResponse(_status(result.get("total"), total, len(raw_items), issues), items,
                          issues, total)


def _status(raw_total: Any, total: int | None, count: int, issues: ParseIssues) -> ResponseStatus:
    """complete when total is missing or matches; partial when it promises more; else invalid."""
    if raw_total is None or total == count:
        return "complete"
    if total is None:
        issues.unparseable["total"] += 1
        return "invalid"
    return "partial" if total > count else "invalid"
