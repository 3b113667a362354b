"""One settings object for everything configured by environment variable (DESIGN.md).

Read at run time (`Settings.from_env()`), never at import, so Dagster's `EnvVar` and the tests can
change the environment between runs. The API key is held as a `Secret` whose repr never shows it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

DEFAULT_BASE_URL = "http://v.juhe.cn/enterprise/App/ConLicByName/query"
DEFAULT_DATA_DIR = "data"
DEFAULT_SQLITE_NAME = "zizhi.sqlite"
# Roster caps: far above a real company list, low enough that a crafted file is refused early.
DEFAULT_ROSTER_MAX_ROWS = 500_000
DEFAULT_ROSTER_MAX_COLUMNS = 500
DEFAULT_ROSTER_MAX_LINE_BYTES = 1 << 20


class SettingsError(ValueError):
    """A configuration value is missing or malformed; the message names the variable."""


class Secret(str):
    """A string that never shows itself in repr, str formatting of containers, or logs."""

    def __repr__(self) -> str:
        return "Secret('***')"


def data_dir() -> Path:
    """Folder of the SQLite file, charts and limiter state (`ZIZHI_DATA_DIR`, default ./data)."""
    return Path(os.environ.get("ZIZHI_DATA_DIR") or DEFAULT_DATA_DIR).resolve()


def default_database_url() -> str:
    return f"sqlite:///{data_dir() / DEFAULT_SQLITE_NAME}"


def _number(name: str, default: float, *, minimum: float = 0.0) -> float:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise SettingsError(f"{name}={raw!r} is not a number") from None
    if value < minimum:
        raise SettingsError(f"{name}={raw!r} must be at least {minimum:g}")
    return value


def _whole_number(name: str, default: int, *, minimum: int = 1) -> int:
    value = _number(name, float(default), minimum=minimum)
    if not value.is_integer():
        raise SettingsError(f"{name}={os.environ[name].strip()!r} must be a whole number")
    return int(value)


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
    juhe_api_key: Secret = field(default=Secret(""), repr=False)
    juhe_qps: float = 10.0
    juhe_daily_budget: int | None = None
    juhe_price_per_call: float = 0.0
    refresh_interval_days: float = 7.0
    roster_path: Path | None = None
    roster_max_rows: int = DEFAULT_ROSTER_MAX_ROWS
    roster_max_columns: int = DEFAULT_ROSTER_MAX_COLUMNS
    roster_max_line_bytes: int = DEFAULT_ROSTER_MAX_LINE_BYTES

    @classmethod
    def from_env(cls) -> Settings:
        env = os.environ
        budget = env.get("JUHE_DAILY_BUDGET", "").strip()
        roster = env.get("ROSTER_PATH", "").strip()
        return cls(
            database_url=env.get("DATABASE_URL", "").strip() or default_database_url(),
            juhe_base_url=env.get("JUHE_BASE_URL", "").strip() or DEFAULT_BASE_URL,
            juhe_api_key=Secret(env.get("JUHE_API_KEY", "").strip()),
            juhe_qps=_number("JUHE_QPS", 10.0, minimum=0.1),
            juhe_daily_budget=int(_number("JUHE_DAILY_BUDGET", 0, minimum=1)) if budget else None,
            juhe_price_per_call=_number("JUHE_PRICE_PER_CALL", 0.0),
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
