"""One settings object for everything configured by environment variable
(docs/architecture.md#configuration).

Read at run time (`Settings.from_env()`), never at import, so Dagster's `EnvVar` and the tests can
change the environment between runs. The API key is held as a `Secret`: every way of printing it
shows `***`. The endpoint is checked here, once for every caller: the key travels only to it, in
a POST body, and only encrypted unless it is this host (the sandbox) or the user opted in.
"""

from __future__ import annotations

import ipaddress
import math
import os
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, NoReturn
from urllib.parse import urlsplit, urlunsplit

import sqlalchemy as sa

DEFAULT_BASE_URL = "https://v.juhe.cn/enterprise/App/ConLicByName/query"
INSECURE_HTTP_VARIABLE = "JUHE_ALLOW_INSECURE_HTTP"
DEFAULT_DATA_DIR = "data"
DEFAULT_SQLITE_NAME = "zizhi.sqlite"
# Roster caps: far above a real company list, low enough that a crafted file is refused early.
# The shared rate limit's margin for network jitter (pipelines/juhe/ratelimit.py), the overall
# deadline of one request, and the cap on an answer's size (docs/architecture.md#hostile-answers;
# the normalize stage never parses more than MAX_BODY_BYTES_LIMIT whatever the setting).
MAX_RATE_MARGIN_MS = 1000
DEFAULT_REQUEST_DEADLINE_S = 30.0
DEFAULT_MAX_BODY_BYTES = 5 * 1024 * 1024
MAX_BODY_BYTES_LIMIT = 64 * 1024 * 1024
DEFAULT_ROSTER_MAX_ROWS = 500_000
DEFAULT_ROSTER_MAX_COLUMNS = 500
DEFAULT_ROSTER_MAX_LINE_BYTES = 1 << 20


class SettingsError(ValueError):
    """A configuration value is missing or malformed; the message names the variable."""


class Secret:
    """A secret text (the juhe key). `repr`, `str`, f-strings, `format` and `%` show `***`; the
    value is only available through `get_secret_value()` (pydantic's `SecretStr` semantics).
    Not a `str`, so no string operation hands the value on by accident; never pickled."""

    __slots__ = ("_value",)

    def __init__(self, value: str | Secret = "") -> None:
        self._value = value.get_secret_value() if isinstance(value, Secret) else str(value)

    def get_secret_value(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    def __str__(self) -> str:
        return "***"

    def __format__(self, spec: str) -> str:
        return format("***", spec)

    def __bool__(self) -> bool:
        return bool(self._value)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash((Secret, self._value))

    def __copy__(self) -> Secret:
        return self

    def __deepcopy__(self, memo: dict[int, Any]) -> Secret:
        return self

    def __reduce__(self) -> NoReturn:
        raise TypeError("a Secret is never pickled: pass the settings' source, not the key")


def data_dir() -> Path:
    """Folder of the SQLite file, charts and limiter state (`ZIZHI_DATA_DIR`, default ./data)."""
    return Path(os.environ.get("ZIZHI_DATA_DIR") or DEFAULT_DATA_DIR).resolve()


def default_database_url() -> str:
    return f"sqlite:///{data_dir() / DEFAULT_SQLITE_NAME}"


def is_loopback(host: str | None) -> bool:
    """This machine: `localhost`, 127.0.0.0/8 or ::1 (where the sandbox listens)."""
    if not host:
        return False
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def shown_url(url: str) -> str:
    """`url` as a message may show it: credentials, query and fragment replaced by `***`."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "***"
    if "@" in url and "@" not in parts.netloc:
        return "***"  # an odd shape: a password could sit anywhere
    netloc = parts.netloc
    if "@" in netloc:
        netloc = "***@" + netloc.rpartition("@")[2]
    return urlunsplit(
        (
            parts.scheme,
            netloc,
            parts.path,
            "***" if parts.query else "",
            "***" if parts.fragment else "",
        )
    )


def check_endpoint(url: str, *, allow_insecure_http: bool = False) -> None:
    """Refuse an endpoint the key must not travel to: anything but https://host/path, except
    plain http to this host (the sandbox) or, with JUHE_ALLOW_INSECURE_HTTP=1, to any host."""

    def refuse(why: str) -> NoReturn:
        raise SettingsError(f"JUHE_BASE_URL={shown_url(url)!r} {why}")

    if any(char.isspace() or not char.isprintable() for char in url):
        refuse("contains spaces or control characters")
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError on a malformed port
    except ValueError:
        refuse("is not a URL")
    if "@" in url:
        refuse(
            "carries credentials (user:password@): remove them; the juhe key is the only "
            "credential and travels in the POST body"
        )
    if "?" in url or "#" in url:
        refuse(
            "carries a query string or fragment: give the endpoint only (scheme, host, path); "
            "the key and the query travel in the POST body"
        )
    if parts.scheme not in ("https", "http"):
        refuse(f"must be an https:// URL, e.g. {DEFAULT_BASE_URL}")
    if not parts.hostname:
        refuse("names no host")
    if parts.scheme == "http" and not is_loopback(parts.hostname) and not allow_insecure_http:
        refuse(
            f"is plain http to {parts.hostname}: the juhe key would cross the network "
            f"unencrypted. Use https://, or set {INSECURE_HTTP_VARIABLE}=1 to accept that"
        )


def hide_password(url: str) -> str:
    """A database URL with its password hidden, for messages and the Dagster UI."""
    return sa.make_url(url).render_as_string(hide_password=True)


def check_database_url(url: str) -> None:
    try:
        sa.make_url(url)
    except (sa.exc.ArgumentError, ValueError):
        raise SettingsError(
            "DATABASE_URL is not a SQLAlchemy URL (e.g. postgresql://user@host:5432/zizhi or "
            "sqlite:///data/zizhi.sqlite)"
        ) from None


def _flag(name: str) -> bool:
    raw = os.environ.get(name, "").strip().lower()
    if raw in ("", "0", "false", "no", "off"):
        return False
    if raw in ("1", "true", "yes", "on"):
        return True
    raise SettingsError(f"{name}={raw!r} must be 1 (on) or 0 (off)")


def _number(name: str, default: float, *, minimum: float = 0.0) -> float:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise SettingsError(f"{name}={raw!r} is not a number") from None
    if not math.isfinite(value):  # nan passes every comparison; inf overflows int()
        raise SettingsError(f"{name}={raw!r} must be a finite number")
    if value < minimum:
        raise SettingsError(f"{name}={raw!r} must be at least {minimum:g}")
    return value


def _whole_number(name: str, default: int, *, minimum: int = 1) -> int:
    value = _number(name, float(default), minimum=minimum)
    if not value.is_integer():
        raise SettingsError(f"{name}={os.environ[name].strip()!r} must be a whole number")
    return int(value)


def _bounded_whole(name: str, default: int, minimum: int, maximum: int) -> int:
    value = _whole_number(name, default, minimum=minimum)
    if value > maximum:
        raise SettingsError(f"{name}={value} must be at most {maximum}")
    return value


def normalize_workers() -> int | None:
    """`ZIZHI_NORMALIZE_WORKERS`: processes for a large normalize; None when unset."""
    if not os.environ.get("ZIZHI_NORMALIZE_WORKERS", "").strip():
        return None
    workers = _number("ZIZHI_NORMALIZE_WORKERS", 1, minimum=1)
    if not workers.is_integer():
        raise SettingsError(f"ZIZHI_NORMALIZE_WORKERS={workers:g} must be a whole number")
    return int(workers)


@dataclass(frozen=True)
class Settings:
    database_url: str = field(default_factory=default_database_url)
    juhe_base_url: str = DEFAULT_BASE_URL
    juhe_allow_insecure_http: bool = False
    juhe_api_key: Secret = field(default_factory=Secret)
    juhe_qps: float = 10.0
    juhe_daily_budget: int | None = None
    juhe_price_per_call: float = 0.0
    juhe_rate_margin_ms: int | None = None  # None: by JUHE_QPS (pipelines/juhe/ratelimit.py)
    juhe_request_deadline_s: float = DEFAULT_REQUEST_DEADLINE_S
    juhe_max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    refresh_interval_days: float = 7.0
    roster_path: Path | None = None
    roster_max_rows: int = DEFAULT_ROSTER_MAX_ROWS
    roster_max_columns: int = DEFAULT_ROSTER_MAX_COLUMNS
    roster_max_line_bytes: int = DEFAULT_ROSTER_MAX_LINE_BYTES

    def __post_init__(self) -> None:
        check_endpoint(self.juhe_base_url, allow_insecure_http=self.juhe_allow_insecure_http)
        check_database_url(self.database_url)

    def __repr__(self) -> str:
        shown = {f.name: getattr(self, f.name) for f in fields(self)}
        shown["database_url"] = self.shown_database_url
        return "Settings(" + ", ".join(f"{k}={v!r}" for k, v in shown.items()) + ")"

    @property
    def shown_database_url(self) -> str:
        return hide_password(self.database_url)

    @property
    def juhe_insecure_http_warning(self) -> str | None:
        """What to say at every run when the key travels unencrypted to another host."""
        parts = urlsplit(self.juhe_base_url)
        if parts.scheme != "http" or is_loopback(parts.hostname):
            return None
        return (
            f"JUHE_BASE_URL is plain http to {parts.hostname} ({INSECURE_HTTP_VARIABLE}=1): "
            "the juhe key crosses the network unencrypted; anyone on the path can read and "
            "spend it."
        )

    @classmethod
    def from_env(cls) -> Settings:
        env = os.environ
        budget = env.get("JUHE_DAILY_BUDGET", "").strip()
        roster = env.get("ROSTER_PATH", "").strip()
        return cls(
            database_url=env.get("DATABASE_URL", "").strip() or default_database_url(),
            juhe_base_url=env.get("JUHE_BASE_URL", "").strip() or DEFAULT_BASE_URL,
            juhe_allow_insecure_http=_flag(INSECURE_HTTP_VARIABLE),
            juhe_api_key=Secret(env.get("JUHE_API_KEY", "").strip()),
            juhe_qps=_number("JUHE_QPS", 10.0, minimum=0.1),
            juhe_daily_budget=_whole_number("JUHE_DAILY_BUDGET", 1) if budget else None,
            juhe_price_per_call=_number("JUHE_PRICE_PER_CALL", 0.0),
            juhe_rate_margin_ms=_bounded_whole("JUHE_RATE_MARGIN_MS", 0, 0, MAX_RATE_MARGIN_MS)
            if env.get("JUHE_RATE_MARGIN_MS", "").strip()
            else None,
            juhe_request_deadline_s=_number(
                "JUHE_REQUEST_DEADLINE_S", DEFAULT_REQUEST_DEADLINE_S, minimum=1.0
            ),
            juhe_max_body_bytes=_bounded_whole(
                "JUHE_MAX_BODY_BYTES", DEFAULT_MAX_BODY_BYTES, 64 * 1024, MAX_BODY_BYTES_LIMIT
            ),
            refresh_interval_days=_number("ZIZHI_REFRESH_INTERVAL_DAYS", 7.0, minimum=0.0),
            roster_path=Path(roster).resolve() if roster else None,
            roster_max_rows=_whole_number("ZIZHI_ROSTER_MAX_ROWS", DEFAULT_ROSTER_MAX_ROWS),
            roster_max_columns=_whole_number(
                "ZIZHI_ROSTER_MAX_COLUMNS", DEFAULT_ROSTER_MAX_COLUMNS
            ),
            roster_max_line_bytes=_whole_number(
                "ZIZHI_ROSTER_MAX_LINE_BYTES", DEFAULT_ROSTER_MAX_LINE_BYTES
            ),
        )
