"""Turns fetch and normalize reports into the metadata shown on asset pages."""

from __future__ import annotations

from typing import Any

import dagster as dg
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from models import Company, License, LicenseChange
from pipelines.juhe.fetcher import FetchReport
from pipelines.metadata import counts_markdown, markdown_table
from pipelines.normalize import NormalizeReport


def fetch_metadata(report: FetchReport, *, remaining_due: int) -> dict[str, Any]:
    failures = [
        (code, len(names), "、".join(names[:5])) for code, names in report.failures_by_code.items()
    ]
    return {
        "companies_due": report.total,
        "companies_fetched": report.landed_ok + report.not_found,
        "found": report.landed_ok,
        "not_found": report.not_found,
        "invalid": report.invalid,
        "failed": report.failed,
        "calls": report.calls,
        "billable_calls": report.billable_calls,
        "estimated_cost": dg.MetadataValue.float(float(report.estimated_cost)),
        "achieved_rate_per_s": dg.MetadataValue.float(round(report.achieved_rate, 2)),
        "elapsed_s": dg.MetadataValue.float(round(report.elapsed, 3)),
        "stopped_by": report.stopped_by or "",
        "stop_message": report.stop_message or "",
        "remaining_due": remaining_due,
        "failures_by_code": dg.MetadataValue.md(
            markdown_table(["juhe code / class", "companies", "examples"], failures)
            if failures
            else "no failures"
        ),
    }


def _newest_changes(engine: Engine, limit: int = 15) -> str:
    query = (
        sa.select(
            LicenseChange.detected_at,
            Company.name,
            License.category,
            License.lic_no,
            LicenseChange.change_type,
            LicenseChange.changed_fields,
        )
        .join(Company, Company.id == LicenseChange.company_id)
        .join(License, License.id == LicenseChange.license_id)
        .order_by(LicenseChange.id.desc())
        .limit(limit)
    )
    with engine.connect() as conn:
        rows = [
            (
                at.strftime("%Y-%m-%d %H:%M"),
                name,
                category,
                lic_no,
                kind,
                ", ".join(fields or []),
            )
            for at, name, category, lic_no, kind, fields in conn.execute(query)
        ]
    if not rows:
        return "no changes yet"
    return markdown_table(["detected", "company", "category", "lic_no", "change", "fields"], rows)


def normalize_metadata(engine: Engine, report: NormalizeReport) -> dict[str, dict[str, Any]]:
    """Per-table metadata: rows written by this run, and on license_changes the change summary."""
    per_table: dict[str, dict[str, Any]] = {
        table: {f"rows_{verb}": n for verb, n in counts.items()}
        for table, counts in report.rows.items()
    }
    per_table.setdefault("licenses", {}).update(
        {
            "responses_normalized": report.responses,
            "anomalies": len(report.anomalies),
            "anomaly_examples": dg.MetadataValue.json(report.anomalies[:20]),
            "drift_fields": dg.MetadataValue.json(dict(report.drift)),
            "responses_missing_required_fields": report.missing_required,
            "unparseable_values": dg.MetadataValue.json(dict(report.unparseable)),
        }
    )
    per_table.setdefault("license_changes", {}).update(
        {
            "changes_by_type": dg.MetadataValue.md(counts_markdown("change", report.changes)),
            "newest_changes": dg.MetadataValue.md(_newest_changes(engine)),
            **{f"changes_{kind}": n for kind, n in report.changes.items()},
        }
    )
    return per_table
