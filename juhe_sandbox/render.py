"""How the API writes a licence: the documented item shape plus real-world format noise.

Every noise decision is drawn, in a fixed order, from a generator seeded per licence, so a
licence keeps its formats from day to day and a body is identical whenever its content is.
Without `garbage`, every form stays parseable by the parsing rules
(docs/architecture.md#parsing-rules).
"""

from __future__ import annotations

from datetime import date, datetime, time
from random import Random
from typing import Any

from juhe_sandbox.licences import SHANGHAI, LicenseTruth
from juhe_sandbox.names import pick_weighted

REASONS = {
    0: "success",
    10001: "错误的请求KEY",
    10011: "当前IP请求超过限制",
    10012: "请求超过次数限制",
    10014: "系统内部异常",
    10020: "接口维护",
    260200: "网络超时,请稍后再试",
    260201: "参数缺失",
    260202: "参数不合法",
    260204: "查询无结果",
}
DATE_STYLES = (("iso", 70), ("iso_time", 8), ("slash", 8), ("compact", 7), ("epoch_ms", 7))
GARBAGE = ("0000-00-00", "见证书", "2021年12月31日", "-", "N/A")


def error_body(code: int, *, as_string: bool = False) -> dict[str, Any]:
    """The body juhe sends for an error: a reason, a null result, the code (maybe a string)."""
    return {
        "reason": REASONS.get(code, "未知错误"),
        "result": None,
        "error_code": str(code) if as_string else code,
    }


def render_date(value: date, style: str) -> str | int:
    """A date in one of the forms the API uses; epoch milliseconds of Shanghai midnight."""
    if style == "epoch_ms":
        return int(datetime.combine(value, time(0), SHANGHAI).timestamp() * 1000)
    formats = {
        "iso": "%Y-%m-%d",
        "iso_time": "%Y-%m-%d 00:00:00",
        "slash": "%Y/%m/%d",
        "compact": "%Y%m%d",
    }
    return value.strftime(formats[style])


def render_time(value: datetime, date_only: bool) -> str:
    """created_time/updated_time: Shanghai wall-clock, with or without the time of day."""
    local = value.astimezone(SHANGHAI)
    return local.strftime("%Y-%m-%d" if date_only else "%Y-%m-%d %H:%M:%S")


def render_item(
    truth: LicenseTruth, noise: Random, *, date_only: bool, garbage: bool = False
) -> dict[str, Any]:
    """One element of `result.items`, keys in the order of the documentation's example."""
    start_style = pick_weighted(noise, DATE_STYLES)
    end_style = pick_weighted(noise, DATE_STYLES)
    blank: str | None = "" if noise.random() < 0.6 else None
    open_word = "长期" if noise.random() < 0.6 else "永久"
    name_roll, pad_roll, empty_roll, garbage_roll = (noise.random() for _ in range(4))
    start = render_date(truth.validity_start, start_style) if truth.validity_start else blank
    if truth.open_ended:
        end: str | int | None = open_word
    else:
        end = render_date(truth.validity_end, end_style) if truth.validity_end else blank
    if garbage and garbage_roll < 0.15:
        end = GARBAGE[int(garbage_roll * 100) % len(GARBAGE)]
    item: dict[str, Any] = {
        "created_time": render_time(truth.created_time, date_only),
        "updated_time": render_time(truth.updated_time, date_only),
        "issue_org": truth.issue_org,
        "validity_start": start,
        "lic_scope": truth.lic_scope,
        "lic_no": truth.lic_no,
        "category": truth.category,
        "validity_end": end,
        "url": truth.url,
    }
    names = _render_names(truth.lic_name, name_roll, pad_roll, empty_roll)
    if names is not _MISSING:
        item["lic_name"] = names
    return item


_MISSING = object()


def _render_names(
    names: tuple[str, ...], name_roll: float, pad_roll: float, empty_roll: float
) -> Any:
    """An array mostly; a bare string for some single names; null, [] or absent when empty.
    Some arrays carry a padded name or an empty string (trimmed and dropped by parsers)."""
    if not names:
        return None if name_roll < 0.4 else [] if name_roll < 0.7 else _MISSING
    if len(names) == 1 and name_roll < 0.25:
        return names[0]
    rendered = list(names)
    if pad_roll < 0.05:
        rendered[0] = f" {rendered[0]} "
    if empty_roll < 0.03:
        rendered.append("")
    return rendered
