"""Pure parsing of ConLicByName bodies: values → typed values, items → records (no I/O).

Rules (docs/architecture.md#parsing-rules):

- Dates accept ``YYYY-MM-DD``, ``YYYY-MM-DD HH:MM:SS``, ``YYYY/MM/DD``, ``YYYYMMDD`` and epoch
  milliseconds (int or digit string; the instant is read in Asia/Shanghai, where it is midnight).
  Blank/null is ``None``; ``长期``/``永久`` mean open-ended; anything else is ``None`` and counted
  as unparseable under the field's name.
- ``created_time``/``updated_time`` become aware datetimes on the Asia/Shanghai wall clock
  (a date alone means 00:00 there).
- ``lic_name`` may be an array, a single string, null or missing; names are trimmed, empty ones
  dropped, and a name repeated within one array keeps its first position only.
- Text fields are trimmed; an empty text is ``None``. NUL characters (PostgreSQL text and jsonb
  cannot hold them) and surrogate code points U+D800–U+DFFF (a lone ``\\ud800`` escape decodes
  to one; it has no UTF-8 form, so neither hashing nor either database takes it) are stripped
  from every text — names, dates, drift keys — before anything else sees it (`clean_text`), so
  the content hash and the change detector see the stripped value.

**Hostile bodies** (docs/architecture.md#hostile-answers). `parse_response` never raises: JSON
nested too deep to decode (RecursionError), a body over ``MAX_BODY_BYTES`` (the largest cap
JUHE_MAX_BODY_BYTES allows; what the fetch refused the ledger says, whatever its size), a top level
that is not an object, error_code 0 whose ``result`` is not an object or whose ``items`` is not a
list — all are ``invalid`` (no licence applied, no removal). Per item: an element that is not an
object, or has no category, is dropped and counted (``missing_required``), and so is an item whose
values are nested too deep to read (RecursionError). A ``created_time`` that cannot be represented
(its UTC instant falls before year 1) is unparseable (null, counted). An item whose category +
lic_no exceed 1000 UTF-8 bytes is dropped and counted (``items[] (key too long)``; PostgreSQL cannot
index it); a name over 1000 bytes is dropped from ``lic_name`` and counted. An ``updated_time``
before ``EARLIEST_PLAUSIBLE`` (1980-01-01) or later than the fetch time + ``FUTURE_SLACK`` (1 day)
makes the item an anomaly (``issues.implausible``): it is not applied at all. error_code 0 with no
items is an anomaly too (``issues.empty_success``). Either way the response does not list every
licence, so no removal is inferred from it; its other items are still applied. Bodies are decoded
with ``json.loads(..., strict=False)``: a literal tab or newline inside a string is data, not a
broken body. ``error_code`` and ``total`` are read by `pipelines.juhe.errors.parse_code` (ASCII
digits, at most 9; a bool, ``²``, ``①``, ``٣`` or a 5000-digit number is no number): an odd
``error_code`` is invalid, an odd ``total`` makes the response invalid, its items still applied.

**Key of a blank lic_no.** The natural key of a licence is (company, category, lic_no). When
``lic_no`` is blank the licence gets ``"~" + sha256(category + "\\x1f" + "\\x1f".join(sorted
names))[:16]`` (hex) as its lic_no: deterministic, stable across days, replays and re-orders of
``lic_name``; a real certificate number never starts with ``~``. (If such a licence's set of names
changes, it is a different key: the old one is removed and the new one added.)

**Content hash.** sha256 of the canonical JSON (a compact UTF-8 array in ``CONTENT_FIELDS``
order: category, lic_no, SORTED names, issue_org, lic_scope, url, validity_start, validity_end,
open_ended, created_time, updated_time; dates ISO, times ISO with their +08:00 offset) of the
parsed content — so a reorder of ``lic_name`` or a change of date format is not a change.

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
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache, partial
from typing import Any, Literal
from zoneinfo import ZoneInfo

from pipelines.juhe.errors import parse_code
from pipelines.settings import MAX_BODY_BYTES_LIMIT

SHANGHAI = ZoneInfo("Asia/Shanghai")
CHINA_OFFSET = dt.timezone(dt.timedelta(hours=8))
UNKNOWN_TIME = dt.datetime(1970, 1, 1, tzinfo=SHANGHAI)
NOT_FOUND_CODE = 260204
EARLIEST_PLAUSIBLE = dt.datetime(1980, 1, 1, tzinfo=SHANGHAI)
FUTURE_SLACK = dt.timedelta(days=1)
MAX_BODY_BYTES = MAX_BODY_BYTES_LIMIT  # the most JUHE_MAX_BODY_BYTES may allow
# A unique index row holds at most ~2700 bytes on PostgreSQL: (category, lic_no) together and a
# single name stay under this many UTF-8 bytes.
_MAX_KEY_BYTES = 1000

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


# What no stored text may hold: NUL (PostgreSQL text and jsonb refuse it) and the surrogate code
# points (a lone one, from a JSON "\ud800" escape, has no UTF-8 encoding).
_UNSTORABLE_RE = re.compile("[\x00\ud800-\udfff]")


def clean_text(text: str) -> str:
    """`text` without NUL and surrogate code points (U+D800–U+DFFF): what may be hashed and
    stored. Untouched (the same object) when it holds neither, which is almost always."""
    if ("\x00" in text or not text.isascii()) and _UNSTORABLE_RE.search(text):
        return _UNSTORABLE_RE.sub("", text)
    return text


class Unparseable(ValueError):
    """A value that is present but matches no accepted form."""


# ---------------------------------------------------------------------------- dates and times


@dataclass(frozen=True, slots=True)
class Validity:
    """A parsed validity date: the date, whether it is open-ended, whether it failed to parse."""

    value: dt.date | None = None
    open_ended: bool = False
    unparseable: bool = False
    iso: str | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        if self.value is not None:
            object.__setattr__(self, "iso", self.value.isoformat())


def _from_epoch_ms(ms: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(ms / 1000, tz=SHANGHAI)


def _parse_text_datetime(text: str) -> dt.datetime:
    """A non-blank string → Asia/Shanghai datetime; raises Unparseable."""
    try:
        if len(text) in (10, 19) and text[4] == "-" and text[7] == "-":  # the common forms, fast
            return dt.datetime.fromisoformat(text).replace(tzinfo=SHANGHAI)
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
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise Unparseable(repr(value))
    if isinstance(value, int | float):
        if isinstance(value, float) and not value.is_integer():
            raise Unparseable(repr(value))
        try:
            return _from_epoch_ms(int(value))
        except (ValueError, OverflowError, OSError) as exc:
            raise Unparseable(repr(value)) from exc
    text = clean_text(value).strip()  # NUL and surrogates are stripped from every text, dates too
    return _parse_text_datetime(text) if text else None


def parse_validity(value: Any, *, allow_open_ended: bool = True) -> Validity:
    """validity_start/validity_end → Validity (date, open-ended flag, unparseable flag)."""
    if isinstance(value, str) and clean_text(value).strip() in OPEN_ENDED_WORDS:
        return Validity(open_ended=True) if allow_open_ended else Validity(unparseable=True)
    try:
        moment = parse_datetime(value)
    except Unparseable:
        return Validity(unparseable=True)
    return Validity(value=moment.date() if moment else None)


class _Memo:
    """A bounded memo of a pure one-argument parser: dates recur across licences."""

    def __init__(self, parse: Callable[[Any], Any], size: int = 1 << 16) -> None:
        self.parse, self.size, self.values = parse, size, dict[Any, Any]()

    def __call__(self, value: Any) -> Any:
        key = value if type(value) is str else (type(value), repr(value))
        try:
            return self.values[key]
        except KeyError:
            if len(self.values) >= self.size:
                self.values.clear()
            result = self.values[key] = self.parse(value)
            return result


_start_of = _Memo(partial(parse_validity, allow_open_ended=False))
_end_of = _Memo(parse_validity)


def _general_time(value: Any) -> tuple[dt.datetime | None, str | None, bool]:
    try:
        parsed = parse_datetime(value)
    except Unparseable:
        return None, None, True
    return parsed, parsed.isoformat() if parsed else None, False


_general_time_of = _Memo(_general_time)


def _time_of(value: Any) -> tuple[dt.datetime | None, str | None, bool]:
    """(datetime, its ISO text, unparseable) of created_time/updated_time.

    The common "YYYY-MM-DD HH:MM:SS" after 1991 (China has kept +08:00 all year since) takes a
    fast path with a fixed +08:00 offset — the same instant and ISO text as Asia/Shanghai.
    """
    if type(value) is str and len(value) == 19 and value[10] == " " and value[:4] > "1991":
        try:
            moment = dt.datetime.fromisoformat(value).replace(tzinfo=CHINA_OFFSET)
        except ValueError:
            return None, None, True
        return moment, f"{value[:10]}T{value[11:]}+08:00", False
    return _general_time_of(value)


# ---------------------------------------------------------------------------- names and grades


def parse_names(value: Any) -> tuple[str, ...]:
    """lic_name (array, single string, null or missing) → trimmed, non-empty, unique names."""
    if value is None:
        return ()
    raw = value if isinstance(value, list) else [value]
    try:
        names = tuple(dict.fromkeys(filter(None, map(str.strip, raw))))
    except TypeError:  # not all strings
        texts = (str(v).strip() for v in raw if v is not None)
        names = tuple(dict.fromkeys(n for n in texts if n))
    if any(clean_text(n) is not n for n in names):
        texts = (clean_text(n).strip() for n in names)
        names = tuple(dict.fromkeys(n for n in texts if n))
    return names


@lru_cache(maxsize=4096)
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


@dataclass(slots=True, eq=False)
class LicenseRecord:
    """One parsed licence item: typed fields, the content hash and (on demand) its JSON content.

    ``canonical`` holds the content's JSON values in CONTENT_FIELDS order (names as given).
    """

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
    content_hash: str
    canonical: tuple[Any, ...]
    _content: dict[str, Any] | None = None
    _json: str | None = None

    @property
    def key(self) -> tuple[str, str]:
        return (self.category, self.lic_no)

    @property
    def version_time(self) -> dt.datetime:
        """When this version became valid at the source (its updated_time, or UNKNOWN_TIME)."""
        return self.updated_time or UNKNOWN_TIME

    @property
    def content(self) -> dict[str, Any]:
        """The version's JSON content (names in the order given)."""
        if self._content is None:
            self._content = dict(zip(CONTENT_FIELDS, self.canonical, strict=True))
            self._content["lic_name"] = list(self.names)
        return self._content

    def content_json(self) -> str:
        if self._json is None:
            self._json = _compact(self.content)
        return self._json


_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))
_quote: Callable[[str], str] = json.encoder.encode_basestring  # type: ignore[attr-defined]
_JSON_SCALARS = {None: "null", True: "true", False: "false"}


def _compact(value: Any) -> str:
    return _ENCODER.encode(value)


def canonical_json(canonical: tuple[Any, ...]) -> str:
    """The canonical JSON array of a content tuple (CONTENT_FIELDS order, names SORTED), compact
    and not ASCII-escaped — byte for byte what json.dumps(..., ensure_ascii=False,
    separators=(",", ":")) writes, assembled directly because it runs once per licence."""
    parts = []
    for value in canonical:
        if type(value) is str:
            parts.append(_quote(value))
        elif type(value) is tuple:
            parts.append("[" + ",".join(map(_quote, sorted(value))) + "]")
        else:
            parts.append(_JSON_SCALARS[value])
    return "[" + ",".join(parts) + "]"


def content_hash(canonical: tuple[Any, ...]) -> str:
    """sha256 of the canonical JSON array of the content."""
    return hashlib.sha256(canonical_json(canonical).encode("utf-8")).hexdigest()


def _text(value: Any) -> str | None:
    if value is None:
        return None
    return clean_text(value if type(value) is str else str(value)).strip() or None


@dataclass
class ParseIssues:
    """What parsing noticed: unknown fields, missing required fields, unparseable values."""

    drift: Counter[str] = field(default_factory=Counter)
    unparseable: Counter[str] = field(default_factory=Counter)
    missing_required: int = 0
    # Items not applied because their updated_time is implausible: {category, lic_no,
    # updated_time (ISO)}.
    implausible: list[dict[str, Any]] = field(default_factory=list)
    empty_success: bool = False
    problem: str | None = None  # why a whole body is invalid, when it is hostile


def _representable(moment: dt.datetime) -> bool:
    """Whether the database can store it: its UTC instant must exist (not before year 1)."""
    try:
        moment.astimezone(dt.UTC)
    except OverflowError:
        return False
    return True


def _too_long(*texts: str) -> bool:
    return sum(len(t.encode("utf-8")) for t in texts) > _MAX_KEY_BYTES


def _short_names(names: tuple[str, ...], issues: ParseIssues) -> tuple[str, ...]:
    kept = tuple(n for n in names if not _too_long(n))
    issues.unparseable["lic_name (too long)"] += len(names) - len(kept)
    return kept


def _plausible(moment: dt.datetime | None, latest: dt.datetime | None) -> bool:
    if moment is None:
        return True
    return moment >= EARLIEST_PLAUSIBLE and (latest is None or moment <= latest)


def parse_item(
    item: Any, issues: ParseIssues, latest: dt.datetime | None = None
) -> LicenseRecord | None:
    """One element of result.items → LicenseRecord, or None (counted) without a category or
    with an implausible updated_time (before 1980, or after `latest`).

    Written flat on purpose: it runs once per licence per replay.
    """
    get = item.get if isinstance(item, dict) else None
    category = _text(get("category")) if get else None
    if get is None or category is None:
        issues.missing_required += 1
        return None
    if len(item) > len(ITEM_FIELDS) or not ITEM_FIELDS.issuperset(item):
        for unknown in item.keys() - ITEM_FIELDS:
            issues.drift[f"items[].{clean_text(str(unknown))}"] += 1
    names = parse_names(get("lic_name"))
    if any(len(n) > _MAX_KEY_BYTES // 4 for n in names):
        names = _short_names(names, issues)
    lic_no = _text(get("lic_no")) or blank_lic_no_key(category, names)
    if len(category) + len(lic_no) > _MAX_KEY_BYTES // 4 and _too_long(category, lic_no):
        issues.missing_required += 1
        issues.unparseable["items[] (key too long)"] += 1
        return None
    start, end = _start_of(get("validity_start")), _end_of(get("validity_end"))
    created, created_iso, created_bad = _time_of(get("created_time"))
    if created is not None and created.year < 2 and not _representable(created):
        created, created_iso, created_bad = None, None, True
    updated, updated_iso, updated_bad = _time_of(get("updated_time"))
    if updated is not None and not _plausible(updated, latest):
        issues.implausible.append(
            {"category": category, "lic_no": _text(get("lic_no")), "updated_time": updated_iso}
        )
        return None
    if start.unparseable or end.unparseable or created_bad or updated_bad:
        for name, bad in (
            ("validity_start", start.unparseable),
            ("validity_end", end.unparseable),
            ("created_time", created_bad),
            ("updated_time", updated_bad),
        ):
            if bad:
                issues.unparseable[name] += 1
    issue_org, lic_scope, url = _text(get("issue_org")), _text(get("lic_scope")), _text(get("url"))
    canonical = (
        category,
        lic_no,
        names,
        issue_org,
        lic_scope,
        url,
        start.iso,
        end.iso,
        end.open_ended,
        created_iso,
        updated_iso,
    )
    return LicenseRecord(
        category,
        lic_no,
        names,
        issue_org,
        lic_scope,
        url,
        start.value,
        end.value,
        end.open_ended,
        created,
        updated,
        content_hash(canonical),
        canonical,
    )


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
        issues = self.issues
        return (
            self.status in ("complete", "not_found")
            and issues.missing_required == 0
            and not issues.implausible
            and not issues.empty_success
        )

    @property
    def is_presence_evidence(self) -> bool:
        """True for answers the API gave about this company (not invalid bodies)."""
        return self.status != "invalid"


def _total(value: Any) -> int | None:
    count = parse_code(value)  # the same shape as error_code: int or ASCII digit string
    return count if count is not None and count >= 0 else None


def _invalid(issues: ParseIssues, problem: str | None = None) -> ParsedResponse:
    issues.problem = problem
    return ParsedResponse("invalid", [], issues)


def refused_response() -> ParsedResponse:
    """The response of a body the fetch refused as unusable (the ledger says so): invalid."""
    return _invalid(ParseIssues(), "refused at fetch")


def _over_cap(body: str | bytes) -> bool:
    if len(body) * 4 <= MAX_BODY_BYTES:  # a UTF-8 character is at most 4 bytes
        return False
    size = len(body if isinstance(body, bytes) else body.encode("utf-8", "surrogatepass"))
    return size > MAX_BODY_BYTES


def parse_response(body: str | bytes, fetched_at: dt.datetime | None = None) -> ParsedResponse:
    """A raw body → ParsedResponse. Never raises: a body it cannot use is ``invalid``.

    With `fetched_at`, an item whose updated_time is later than fetched_at + FUTURE_SLACK is
    implausible (not applied); before EARLIEST_PLAUSIBLE always is."""
    issues = ParseIssues()
    if _over_cap(body):
        return _invalid(issues, "over the size cap")
    try:
        data = json.loads(body, strict=False)  # control characters inside strings are data
    except RecursionError:
        return _invalid(issues, "JSON nested too deep")
    except (ValueError, TypeError):
        return _invalid(issues, "not JSON")
    if not isinstance(data, dict):
        issues.missing_required += 1
        return _invalid(issues, "not a JSON object")
    for unknown in data.keys() - TOP_LEVEL_FIELDS:
        issues.drift[clean_text(unknown)] += 1
    code = parse_code(data.get("error_code"))
    if code == NOT_FOUND_CODE:
        return ParsedResponse("not_found", [], issues)
    if code != 0:
        return _invalid(issues)
    result = data.get("result")
    if not isinstance(result, dict) or not isinstance(result.get("items"), list):
        issues.missing_required += 1
        return _invalid(issues, "result or result.items of the wrong type")
    for unknown in result.keys() - RESULT_FIELDS:
        issues.drift[f"result.{clean_text(unknown)}"] += 1
    raw_items = result["items"]
    latest = None if fetched_at is None else fetched_at + FUTURE_SLACK
    items = _parse_items(raw_items, issues, latest)
    issues.empty_success = not raw_items
    total = _total(result.get("total"))
    return ParsedResponse(
        _status(result.get("total"), total, len(raw_items), issues), items, issues, total
    )


def _parse_items(
    raw_items: list[Any], issues: ParseIssues, latest: dt.datetime | None
) -> list[LicenseRecord]:
    """The items that parse; an item nested so deep that reading it recurses too far is
    dropped and counted like one without a category (so no removal is inferred)."""
    items = []
    for raw in raw_items:
        try:
            record = parse_item(raw, issues, latest)
        except RecursionError:
            issues.missing_required += 1
            issues.unparseable["items[] (nested too deep)"] += 1
            continue
        if record is not None:
            items.append(record)
    return items


def _status(raw_total: Any, total: int | None, count: int, issues: ParseIssues) -> ResponseStatus:
    """complete when total is missing or matches; partial when it promises more; else invalid."""
    if raw_total is None or total == count:
        return "complete"
    if total is None:
        issues.unparseable["total"] += 1
        return "invalid"
    return "partial" if total > count else "invalid"
