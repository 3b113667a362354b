"""Helpers for normalization tests: crafted companies, raw bodies and table digests."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from models import Company, License, LicenseChange, LicenseName, LicenseVersion, RawResponse

CST = ZoneInfo("Asia/Shanghai")


def day(n: int, hour: int = 2) -> dt.datetime:
    """fetched_at of day n (02:00 Asia/Shanghai, 2026-01-01 + n days)."""
    return dt.datetime(2026, 1, 1, hour, tzinfo=CST) + dt.timedelta(days=n)


def make_company(engine: Engine, name: str = "河南省宏远建设工程有限公司", shard: int = 0) -> int:
    with engine.begin() as conn:
        return conn.execute(
            sa.insert(Company)
            .values(name=name, match_key=name, query=name, shard=shard)
            .returning(Company.id)
        ).scalar_one()


def item(lic_no: str = "D241000001", updated: str = "2025-01-01 10:00:00", **fields: Any) -> dict:
    """One licence item as the API renders it; keyword fields override the defaults."""
    base: dict[str, Any] = {
        "category": "建筑业企业资质",
        "lic_no": lic_no,
        "lic_name": ["建筑工程施工总承包二级", "市政公用工程施工总承包三级"],
        "issue_org": "河南省住房和城乡建设厅",
        "validity_start": "2021-01-05",
        "validity_end": "2026-01-04",
        "lic_scope": "可承担相应等级工程",
        "url": "http://jzsc.mohurd.gov.cn/data/company/detail?id=1",
        "created_time": "2020-08-10",
        "updated_time": updated,
    }
    base.update(fields)
    return {k: v for k, v in base.items() if v is not ...}


def body(
    items: list[dict] | None = None,
    *,
    total: int | str | None = "auto",
    error_code: int | str = 0,
    **extra: Any,
) -> dict:
    if error_code == 260204:
        return {"reason": "查询无结果", "result": None, "error_code": 260204, **extra}
    items = items or []
    result: dict[str, Any] = {"items": items}
    if total == "auto":
        result["total"] = len(items)
    elif total is not None:
        result["total"] = total
    return {
        "reason": "success",
        "result": result,
        "sign": "0" * 32,
        "error_code": error_code,
        **extra,
    }


def raw_row(company_id: int, payload: dict | str, fetched_at: dt.datetime) -> dict[str, Any]:
    text = payload if isinstance(payload, str) else json.dumps(payload, ensure_ascii=False)
    code = payload.get("error_code") if isinstance(payload, dict) else None
    return {
        "company_id": company_id,
        "query": "q",
        "fetched_at": fetched_at,
        "http_status": 200,
        "error_code": int(code) if code is not None else None,
        "body": text,
        "body_sha256": hashlib.sha256(text.encode()).hexdigest(),
        "run_id": "test",
    }


def add_raw(engine: Engine, company_id: int, payload: dict | str, fetched_at: dt.datetime) -> int:
    with engine.begin() as conn:
        return conn.execute(
            sa.insert(RawResponse)
            .values(raw_row(company_id, payload, fetched_at))
            .returning(RawResponse.id)
        ).scalar_one()


def add_raws(engine: Engine, rows: list[dict[str, Any]]) -> None:
    """Land many raw responses (rows from `raw_row`) in one transaction."""
    with engine.begin() as conn:
        conn.execute(sa.insert(RawResponse), rows)


def _iso(value: Any) -> Any:
    return value.astimezone(dt.UTC).isoformat() if isinstance(value, dt.datetime) else value


def digest(engine: Engine) -> dict[str, list[tuple]]:
    """Every normalized table as sorted tuples, licences by natural key, without surrogate ids
    or load bookkeeping (loaded_at, run_id, updated_at, normalized_at)."""
    lic, comp = License.__table__.c, Company.__table__.c
    key = (comp.match_key, lic.category, lic.lic_no)
    joined = sa.join(License, Company, lic.company_id == comp.id)
    queries = {
        "companies": sa.select(comp.match_key, comp.last_response_at, comp.license_count),
        "licenses": sa.select(
            *key, *[c for c in lic if c.name not in ("id", "company_id", "category", "lic_no")]
        ).select_from(joined),
        "license_names": sa.select(
            *key, LicenseName.name, LicenseName.position, LicenseName.grade
        ).select_from(joined.join(LicenseName, LicenseName.license_id == lic.id)),
        "license_versions": sa.select(
            *key,
            LicenseVersion.valid_from,
            LicenseVersion.valid_to,
            LicenseVersion.content_hash,
            LicenseVersion.content,
        ).select_from(joined.join(LicenseVersion, LicenseVersion.license_id == lic.id)),
        "license_changes": sa.select(
            *key,
            LicenseChange.change_type,
            LicenseChange.changed_fields,
            LicenseChange.old_values,
            LicenseChange.new_values,
            LicenseChange.source_updated_time,
            LicenseChange.detected_at,
            LicenseChange.raw_response_id,
        ).select_from(joined.join(LicenseChange, LicenseChange.license_id == lic.id)),
    }
    out = {}
    with engine.connect() as conn:
        for name, query in queries.items():
            rows = [
                tuple(
                    json.dumps(v, sort_keys=True, ensure_ascii=False)
                    if isinstance(v, dict | list)
                    else _iso(v)
                    for v in row
                )
                for row in conn.execute(query)
            ]
            out[name] = sorted(rows, key=repr)
    return out


def changes(engine: Engine, lic_no: str | None = None) -> list[dict[str, Any]]:
    """The change log in insertion order (optionally of one lic_no)."""
    lic = License.__table__.c
    query = (
        sa.select(
            lic.lic_no,
            LicenseChange.change_type,
            LicenseChange.changed_fields,
            LicenseChange.old_values,
            LicenseChange.new_values,
            LicenseChange.source_updated_time,
            LicenseChange.detected_at,
            LicenseChange.raw_response_id,
        )
        .join(License, License.id == LicenseChange.license_id)
        .order_by(LicenseChange.id)
    )
    if lic_no is not None:
        query = query.where(lic.lic_no == lic_no)
    with engine.connect() as conn:
        return [dict(row._mapping) for row in conn.execute(query)]


def licence(engine: Engine, lic_no: str) -> dict[str, Any]:
    with engine.connect() as conn:
        row = conn.execute(sa.select(License).where(License.lic_no == lic_no)).mappings().one()
        return dict(row)


def names(engine: Engine, lic_no: str) -> list[tuple[str, int, str | None]]:
    query = (
        sa.select(LicenseName.name, LicenseName.position, LicenseName.grade)
        .join(License, License.id == LicenseName.license_id)
        .where(License.lic_no == lic_no)
        .order_by(LicenseName.position)
    )
    with engine.connect() as conn:
        return [tuple(row) for row in conn.execute(query)]


def versions(engine: Engine, lic_no: str) -> list[tuple[dt.datetime, dt.datetime | None, str]]:
    """(valid_from, valid_to, updated_time in content) of a licence, oldest first."""
    query = (
        sa.select(LicenseVersion.valid_from, LicenseVersion.valid_to, LicenseVersion.content)
        .join(License, License.id == LicenseVersion.license_id)
        .where(License.lic_no == lic_no)
        .order_by(LicenseVersion.valid_from)
    )
    with engine.connect() as conn:
        return [(r.valid_from, r.valid_to, r.content["updated_time"]) for r in conn.execute(query)]
