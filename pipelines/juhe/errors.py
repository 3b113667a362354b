"""juhe error codes → what the pipeline does (docs/architecture.md#error-codes-and-actions).

`classify` maps any `error_code` (int, numeric string or missing) to an `ErrorClass`; the typed
exceptions carry the code, its class and the HTTP status. No message here ever contains the key.
"""

from __future__ import annotations

import re
from enum import StrEnum


class ErrorClass(StrEnum):
    """The action class of an answer. Values are the `api_calls.outcome` values."""

    OK = "ok"
    NOT_FOUND = "not_found"
    INVALID = "invalid"
    TRANSIENT = "transient"
    THROTTLED = "throttled"
    QUOTA = "quota"
    MAINTENANCE = "maintenance"
    FATAL = "fatal"


_CLASS_OF_CODE: dict[int, ErrorClass] = {
    0: ErrorClass.OK,
    260204: ErrorClass.NOT_FOUND,
    260201: ErrorClass.INVALID,
    260202: ErrorClass.INVALID,
    260200: ErrorClass.TRANSIENT,
    260203: ErrorClass.TRANSIENT,
    260205: ErrorClass.TRANSIENT,
    10014: ErrorClass.TRANSIENT,
    10011: ErrorClass.THROTTLED,
    10012: ErrorClass.QUOTA,
    10013: ErrorClass.QUOTA,
    10020: ErrorClass.MAINTENANCE,
    **{code: ErrorClass.FATAL for code in (10001, 10002, 10003, 10004, 10005, 10007, 10008, 10009)},
    10021: ErrorClass.FATAL,
}

# What a person must do about each code that stops a run. The key itself is never shown.
_MEANINGS: dict[int, str] = {
    10001: "错误的请求KEY — the key is wrong: check JUHE_API_KEY",
    10002: "该KEY无请求权限 — the key has no permission for ConLicByName: "
    "enable the API for the key in JUHE_API_KEY or use another key",
    10003: "KEY过期 — the key has expired: renew it and update JUHE_API_KEY",
    10004: "错误的OPENID — the account's OPENID is wrong: check the account behind JUHE_API_KEY",
    10005: "应用未审核超时, 请提交认证 — the application was not approved in time: "
    "submit verification on juhe.cn for the key in JUHE_API_KEY",
    10007: "未知的请求源 — juhe does not recognise this request source: "
    "check the key's settings on juhe.cn (JUHE_API_KEY)",
    10008: "被禁止的IP — this machine's IP is banned: allow it in the key's IP whitelist "
    "on juhe.cn (JUHE_API_KEY)",
    10009: "被禁止的KEY — the key is banned: contact juhe or set another key in JUHE_API_KEY",
    10021: "接口停用 — the API is discontinued for this key: check the subscription behind "
    "JUHE_API_KEY",
    10011: "当前IP请求超过限制 — requests from this IP exceed juhe's rate limit: lower JUHE_QPS",
    10012: "请求超过次数限制 — the key's request quota is used up: the next run resumes "
    "(top up the quota of JUHE_API_KEY to continue sooner)",
    10013: "测试KEY超过请求限制 — the test key's quota is used up: the next run resumes "
    "(use a paid key in JUHE_API_KEY to continue)",
    10020: "接口维护 — the API is under maintenance: a later run resumes",
}


# An error code as text: ASCII digits only (``str.isdigit`` also accepts ``²``, ``①`` and ``٣``,
# which ``int`` rejects or reads), an optional sign, at most 9 digits — every juhe code fits,
# and so does a 32-bit integer column.
_CODE_RE = re.compile(r"[+-]?[0-9]{1,9}")
_CODE_LIMIT = 999_999_999


def parse_code(raw: object) -> int | None:
    """The integer value of an `error_code` (or `total`) that may arrive as an int or a string;
    None if absent or odd. Never raises: a bool is not a code, text must be ASCII digits with an
    optional sign, and anything beyond 9 digits (int or text) is None."""
    if isinstance(raw, bool):
        return None
    if isinstance(raw, int):
        return int(raw) if -_CODE_LIMIT <= raw <= _CODE_LIMIT else None
    if isinstance(raw, str):
        text = raw.strip()
        if _CODE_RE.fullmatch(text):
            return int(text)
    return None


def classify(code: int | str | None) -> ErrorClass:
    """The action class of a juhe `error_code`; unknown or missing codes are transient."""
    value = parse_code(code)
    if value is None:
        return ErrorClass.TRANSIENT
    return _CLASS_OF_CODE.get(value, ErrorClass.TRANSIENT)


def describe(code: int | None) -> str:
    """A human explanation of a code, naming JUHE_API_KEY where the key is the thing to fix."""
    if code is None:
        return "no juhe error code"
    meaning = _MEANINGS.get(code)
    return f"juhe error {code}: {meaning}" if meaning else f"juhe error {code}"


class JuheError(Exception):
    """A juhe call that did not yield a usable answer. Never carries the key or request body."""

    def __init__(
        self,
        code: int | None,
        error_class: ErrorClass,
        http_status: int | None = None,
        detail: str = "",
    ) -> None:
        self.code = code
        self.error_class = error_class
        self.http_status = http_status
        self.detail = detail
        super().__init__(self._message())

    def _message(self) -> str:
        parts = [describe(self.code) if self.code is not None else self.error_class.value]
        if self.http_status is not None and self.http_status != 200:
            parts.append(f"HTTP {self.http_status}")
        if self.detail:
            parts.append(self.detail)
        return "; ".join(parts)


class JuheTransientError(JuheError):
    """Worth retrying: network trouble, a non-200 status (5xx, an HTML error page), 2602xx/10014.
    An HTTP 200 body that cannot be used is not transient: `JuheUnusableAnswerError`."""

    def __init__(
        self, code: int | None = None, http_status: int | None = None, detail: str = ""
    ) -> None:
        super().__init__(code, ErrorClass.TRANSIENT, http_status, detail)


class JuheThrottledError(JuheError):
    """10011: slow down and retry."""


class JuheQuotaError(JuheError):
    """10012/10013: stop calling; the next run resumes."""


class JuheMaintenanceError(JuheError):
    """10020: stop; a later run resumes."""


class JuheFatalError(JuheError):
    """A key/account problem (10001–10009, 10021): stop and tell the operator."""


class JuheInvalidQueryError(JuheError):
    """260201/260202: the query itself is refused; not retried in the run (due again a refresh
    interval later)."""


# How the ledger's `api_calls.detail` of an unusable answer starts; normalize reads the body of
# such a call as invalid whatever it holds (the fetch refused it).
UNUSABLE_DETAIL_PREFIX = "unusable answer: "


class JuheUnusableAnswerError(JuheError):
    """An HTTP 200 answer that was read but cannot be used as-is
    (docs/architecture.md#hostile-answers): JSON nested too deep to decode, a body over the size
    cap, or error_code 0 whose `result` is not an object with an `items` list. `body_text` is the
    body as stored (NUL made storable), `reason`/`sign` what could be read of them, `problem` what
    is wrong in words.

    Not retried in the same run: an error_code 0 answer may have been billed. The fetcher lands
    the body and the ledger row and marks the company `failed` (normal backoff, a later run)."""

    def __init__(
        self,
        code: int | None,
        problem: str,
        *,
        body_text: str,
        latency_ms: int,
        reason: str | None = None,
        sign: str | None = None,
    ) -> None:
        self.problem = problem
        self.body_text = body_text
        self.latency_ms = latency_ms
        self.reason = reason
        self.sign = sign
        super().__init__(code, classify(code), 200, UNUSABLE_DETAIL_PREFIX + problem)


_EXCEPTION_OF_CLASS: dict[ErrorClass, type[JuheError]] = {
    ErrorClass.THROTTLED: JuheThrottledError,
    ErrorClass.QUOTA: JuheQuotaError,
    ErrorClass.MAINTENANCE: JuheMaintenanceError,
    ErrorClass.FATAL: JuheFatalError,
    ErrorClass.INVALID: JuheInvalidQueryError,
}


def error_for(code: int | None, http_status: int | None = 200, detail: str = "") -> JuheError:
    """The typed exception for an answer's code (OK/NOT_FOUND are not errors: ValueError)."""
    error_class = classify(code)
    if error_class in (ErrorClass.OK, ErrorClass.NOT_FOUND):
        raise ValueError(f"error code {code} is not an error")
    if error_class is ErrorClass.TRANSIENT:
        return JuheTransientError(code, http_status, detail)
    return _EXCEPTION_OF_CLASS[error_class](code, error_class, http_status, detail)
