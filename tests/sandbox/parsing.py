"""A minimal reading of API items back into `LicenseTruth`, to check the sandbox's noise."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from juhe_sandbox.dataset import LicenseTruth

SHANGHAI = ZoneInfo("Asia/Shanghai")
OPEN_ENDED = ("长期", "永久")


def parse_date(value: Any) -> date | None:
    if value is None or value == "" or value in OPEN_ENDED:
        return None
    if isinstance(value, int):
        return datetime.fromtimestamp(value / 1000, SHANGHAI).date()
    for fmt in ("%Y-%m-%d", "%Y-%m-%d %H:%M:%S", "%Y/%m/%d", "%Y%m%d"):
        try:
            return datetime.strptime(value, fmt).date()
        except ValueError:
            continue
    raise ValueError(f"unparseable date {value!r}")


def parse_time(value: str) -> datetime:
    fmt = "%Y-%m-%d %H:%M:%S" if " " in value else "%Y-%m-%d"
    return datetime.strptime(value, fmt).replace(tzinfo=SHANGHAI)


def parse_names(value: Any) -> tuple[str, ...]:
    names = [value] if isinstance(value, str) else value or []
    return tuple(n.strip() for n in names if n.strip())


def parse_item(item: dict[str, Any]) -> LicenseTruth:
    return LicenseTruth(
        category=item["category"],
        lic_no=item["lic_no"],
        lic_name=parse_names(item.get("lic_name")),
        issue_org=item["issue_org"],
        lic_scope=item["lic_scope"],
        url=item["url"],
        validity_start=parse_date(item["validity_start"]),
        validity_end=parse_date(item["validity_end"]),
        open_ended=item["validity_end"] in OPEN_ENDED,
        created_time=parse_time(item["created_time"]),
        updated_time=parse_time(item["updated_time"]),
    )
