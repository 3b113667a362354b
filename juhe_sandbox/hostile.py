"""Hostile HTTP 200 answers the sandbox can give instead of the real one (fault kinds).

Each builder turns the answer the sandbox would have given (a dict) into the bytes of a hostile
one; `render` returns them with the error code to record (the code a billing juhe would count).
They are the cases of docs/architecture.md#hostile-answers and are built so that they carry NO real
licence change: whatever the pipeline keeps from them, a later clean answer leaves the tables
exactly as if the hostile one had never come.

* ``deep``          — JSON nested 100 000 levels (Python's decoder raises RecursionError);
* ``oversize``      — the real answer padded with whitespace past the 5 MiB size cap;
* ``nul``           — NUL characters (``\\u0000``) in every text of every item and in ``reason``;
* ``wrong_types``   — ``total`` a string, junk elements in ``items`` (a number, null, a string, a
                      list, an object without category whose ``lic_name`` is a number);
* ``result_string`` — error_code 0 with ``result`` a string (not an object);
* ``items_object``  — error_code 0 with ``result.items`` an object (not a list);
* ``future_time``   — every item's ``updated_time`` 30 days after now;
* ``ancient_time``  — every item's ``updated_time`` in 1900;
* ``empty_success`` — error_code 0, ``items`` empty, ``total`` 0.

An answer that is not error_code 0 (a 260204, say) is left as it is by the kinds that rework
items; ``deep`` and ``oversize`` apply to any answer.
"""

from __future__ import annotations

import copy
import datetime as dt
import json
from collections.abc import Callable
from typing import Any
from zoneinfo import ZoneInfo

SIZE_CAP = 5 * 1024 * 1024  # the client's default body cap
DEPTH = 100_000
SHANGHAI = ZoneInfo("Asia/Shanghai")

KINDS = (
    "deep",
    "oversize",
    "nul",
    "wrong_types",
    "result_string",
    "items_object",
    "future_time",
    "ancient_time",
    "empty_success",
)


def _dump(body: dict[str, Any]) -> bytes:
    return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()


def _code(body: dict[str, Any]) -> int | None:
    try:
        return int(body["error_code"])
    except (KeyError, TypeError, ValueError):
        return None


def _items(body: dict[str, Any]) -> list[dict[str, Any]] | None:
    result = body.get("result")
    if _code(body) != 0 or not isinstance(result, dict):
        return None
    if not isinstance(result.get("items"), list):
        return None
    return result["items"]  # type: ignore[no-any-return]


def deep(body: dict[str, Any]) -> bytes:
    return (
        b'{"error_code":0,"reason":"success","result":{"items":'
        + b"[" * DEPTH
        + b"]" * DEPTH
        + b',"total":1}}'
    )


def oversize(body: dict[str, Any], cap: int = SIZE_CAP) -> bytes:
    data = _dump(body)
    return data + b" " * max(cap + 1 - len(data), 0)


def _with_nul(value: Any) -> Any:
    if isinstance(value, str):
        return f"\x00{value[: len(value) // 2]}\x00{value[len(value) // 2 :]}\x00"
    if isinstance(value, list):
        return [_with_nul(v) for v in value]
    return value


def nul(body: dict[str, Any]) -> bytes:
    if (items := _items(body)) is None:
        return _dump(body)
    body["reason"] = _with_nul(body.get("reason") or "success")
    times = ("created_time", "updated_time")
    body["result"]["items"] = [
        {k: v if k in times else _with_nul(v) for k, v in i.items()} for i in items
    ]
    return _dump(body)


def wrong_types(body: dict[str, Any]) -> bytes:
    if (items := _items(body)) is None:
        return _dump(body)
    body["result"]["items"] = [1, None, *items, "item", [], {"lic_no": 7, "lic_name": 12345}]
    body["result"]["total"] = "many"
    return _dump(body)


def result_string(body: dict[str, Any]) -> bytes:
    return _dump({"error_code": 0, "reason": "success", "result": "暂无", "sign": body.get("sign")})


def items_object(body: dict[str, Any]) -> bytes:
    items = dict(enumerate(_items(body) or []))
    return _dump({"error_code": 0, "reason": "success", "result": {"items": items, "total": 1}})


def _retime(body: dict[str, Any], when: str) -> bytes:
    for item in _items(body) or []:
        if isinstance(item, dict):
            item["updated_time"] = when
    return _dump(body)


def future_time(body: dict[str, Any]) -> bytes:
    later = dt.datetime.now(SHANGHAI) + dt.timedelta(days=30)
    return _retime(body, later.strftime("%Y-%m-%d %H:%M:%S"))


def ancient_time(body: dict[str, Any]) -> bytes:
    return _retime(body, "1900-01-01 00:00:00")


def empty_success(body: dict[str, Any]) -> bytes:
    return _dump(
        {"error_code": 0, "reason": "success", "result": {"items": [], "total": 0}, "sign": None}
    )


_BUILDERS: dict[str, Callable[[dict[str, Any]], bytes]] = {
    "deep": deep,
    "oversize": oversize,
    "nul": nul,
    "wrong_types": wrong_types,
    "result_string": result_string,
    "items_object": items_object,
    "future_time": future_time,
    "ancient_time": ancient_time,
    "empty_success": empty_success,
}
_ALWAYS_BILLED = frozenset({"deep", "oversize", "result_string", "items_object", "empty_success"})


def render(kind: str, body: dict[str, Any]) -> tuple[bytes, int | None]:
    """The hostile bytes of `kind` in place of `body`, and the error code to record."""
    data = _BUILDERS[kind](copy.deepcopy(body))
    return data, 0 if kind in _ALWAYS_BILLED else _code(body)
