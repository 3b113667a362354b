"""Asset checks on what the juhe assets wrote. Each check reads the database, so a test can craft
a bad state and see it fail. Blocking checks stop downstream assets; WARN checks only report."""

import datetime as dt
import os
from collections.abc import Iterator
from typing import Any

import dagster as dg
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.orm import InstrumentedAttribute

from models import ApiCall, Company, License, LicenseName, LicenseVersion, utcnow
from pipelines.juhe.assets import qualification_responses, refresh_interval
from pipelines.metadata import latest_metadata
from pipelines.resources import DatabaseResource

WARN = dg.AssetCheckSeverity.WARN
DEFAULT_MAX_FAILURE_RATE = 0.05


def max_failure_rate() -> float:
    return float(os.environ.get("ZIZHI_MAX_FAILURE_RATE") or DEFAULT_MAX_FAILURE_RATE)


def failure_rate_result(engine: Engine, run_id: str, threshold: float) -> dg.AssetCheckResult:
    """Share of the companies this run called that ended the run failed."""
    called = sa.select(ApiCall.company_id).where(ApiCall.run_id == run_id).distinct().subquery()
    query = (
        sa.select(
            sa.func.count(),
            sa.func.coalesce(
                sa.func.sum(sa.case((Company.fetch_status == "failed", 1), else_=0)), 0
            ),
        )
        .select_from(Company)
        .join(called, called.c.company_id == Company.id)
    )
    failed_examples = (
        sa.select(Company.name, Company.last_error_code)
        .join(called, called.c.company_id == Company.id)
        .where(Company.fetch_status == "failed")
        .limit(5)
    )
    with engine.connect() as conn:
        attempted, failed = conn.execute(query).one()
        examples = [f"{name} ({code})" for name, code in conn.execute(failed_examples)]
    rate = failed / attempted if attempted else 0.0
    return dg.AssetCheckResult(
        passed=rate <= threshold,
        metadata={
            "companies_called": attempted,
            "companies_failed": failed,
            "failure_rate": dg.MetadataValue.float(round(rate, 4)),
            "threshold": dg.MetadataValue.float(threshold),
            "examples": ", ".join(examples) or "none",
        },
        description=f"{failed} of {attempted} companies called in this run failed",
    )


def quota_stop_result(metadata: dict[str, Any]) -> dg.AssetCheckResult:
    """Warns when the latest fetch was stopped early by quota, maintenance or the daily budget."""
    stopped_by = str(metadata.get("stopped_by") or "")
    return dg.AssetCheckResult(
        passed=not stopped_by,
        severity=WARN,
        metadata={
            "stopped_by": stopped_by or "none",
            "remaining_due": metadata.get("remaining_due", 0),
        },
        description=str(metadata.get("stop_message") or "the fetch ran to completion"),
    )


def freshness_result(
    engine: Engine, interval: dt.timedelta, now: dt.datetime
) -> dg.AssetCheckResult:
    """Every active company (except invalid queries) fetched successfully within 2× the interval."""
    cutoff = now - 2 * interval
    stale = (
        sa.select(Company.name)
        .where(Company.active, Company.fetch_status != "invalid")
        .where(sa.or_(Company.last_fetched_at.is_(None), Company.last_fetched_at < cutoff))
    )
    with engine.connect() as conn:
        count = conn.execute(sa.select(sa.func.count()).select_from(stale.subquery())).scalar_one()
        examples = conn.execute(stale.limit(5)).scalars().all()
    return dg.AssetCheckResult(
        passed=count == 0,
        severity=WARN,
        metadata={
            "stale_companies": count,
            "cutoff": cutoff.isoformat(),
            "examples": ", ".join(examples) or "none",
        },
        description=f"{count} active companies not successfully fetched since "
        f"{cutoff:%Y-%m-%d %H:%M} UTC",
    )


def _duplicates(conn: sa.Connection, *columns: InstrumentedAttribute[Any]) -> int:
    grouped = sa.select(*columns).group_by(*columns).having(sa.func.count() > 1).subquery()
    return int(conn.execute(sa.select(sa.func.count()).select_from(grouped)).scalar_one())


def natural_key_result(engine: Engine) -> dg.AssetCheckResult:
    with engine.connect() as conn:
        found = {
            "companies.match_key": _duplicates(conn, Company.match_key),
            "licenses (company_id, category, lic_no)": _duplicates(
                conn, License.company_id, License.category, License.lic_no
            ),
            "license_names (license_id, name)": _duplicates(
                conn, LicenseName.license_id, LicenseName.name
            ),
        }
    return dg.AssetCheckResult(passed=not any(found.values()), metadata=found)


def open_version_result(engine: Engine) -> dg.AssetCheckResult:
    """Each current licence has exactly one open version; removed ones may have one or none."""
    open_versions = (
        sa.select(LicenseVersion.license_id, sa.func.count().label("n"))
        .where(LicenseVersion.valid_to.is_(None))
        .group_by(LicenseVersion.license_id)
        .subquery()
    )
    bad = (
        sa.select(License.id)
        .outerjoin(open_versions, open_versions.c.license_id == License.id)
        .where(License.removed_at.is_(None))
        .where(sa.func.coalesce(open_versions.c.n, 0) != 1)
    )
    with engine.connect() as conn:
        count = conn.execute(sa.select(sa.func.count()).select_from(bad.subquery())).scalar_one()
    return dg.AssetCheckResult(
        passed=count == 0,
        metadata={"licenses_without_exactly_one_open_version": count},
    )


def anomalies_result(metadata: dict[str, Any]) -> dg.AssetCheckResult:
    anomalies = int(metadata.get("anomalies", 0) or 0)
    missing = int(metadata.get("responses_missing_required_fields", 0) or 0)
    drift = metadata.get("drift_fields") or {}
    return dg.AssetCheckResult(
        passed=anomalies == 0 and missing == 0 and not drift,
        severity=WARN,
        metadata={
            "anomalies": anomalies,
            "responses_missing_required_fields": missing,
            "drift_fields": dg.MetadataValue.json(drift),
        },
        description="same updated_time with different content, schema drift, or responses "
        "missing fields",
    )


# The checks run as two steps, one after the fetch and one after normalize, rather than a step
# each: every step costs Dagster ~0.1 s of bookkeeping. Each check can still run on its own.
FETCH_FAILURE_RATE = dg.AssetCheckSpec(
    "fetch_failure_rate",
    asset=qualification_responses,
    blocking=True,
    description="Share of companies that failed in this run stays under "
    "ZIZHI_MAX_FAILURE_RATE (default 5 %).",
)
FETCH_NOT_STOPPED = dg.AssetCheckSpec(
    "fetch_not_stopped",
    asset=qualification_responses,
    description="Warns when quota, maintenance or the daily budget stopped the fetch.",
)
COMPANIES_FRESH = dg.AssetCheckSpec(
    "companies_fresh",
    asset="companies",
    description="Every active company successfully fetched within twice the refresh interval.",
)
NATURAL_KEYS_UNIQUE = dg.AssetCheckSpec(
    "natural_keys_unique",
    asset="licenses",
    blocking=True,
    description="Natural keys are unique in companies, licenses and license_names.",
)
ONE_OPEN_VERSION = dg.AssetCheckSpec(
    "one_open_version",
    asset="license_versions",
    blocking=True,
    description="Exactly one open version per current licence.",
)
NO_ANOMALIES_OR_DRIFT = dg.AssetCheckSpec(
    "no_anomalies_or_drift",
    asset="licenses",
    description="No same-time anomalies, schema drift or malformed responses in the latest "
    "normalize.",
)


def _selected(context: dg.AssetCheckExecutionContext, spec: dg.AssetCheckSpec) -> bool:
    return spec.key in context.selected_asset_check_keys


def _for(spec: dg.AssetCheckSpec, result: dg.AssetCheckResult) -> dg.AssetCheckResult:
    """The result addressed to its check, as a multi-asset check must yield it."""
    return result._replace(asset_key=spec.asset_key, check_name=spec.name)


@dg.multi_asset_check(specs=[FETCH_FAILURE_RATE, FETCH_NOT_STOPPED], can_subset=True)
def fetch_checks(
    context: dg.AssetCheckExecutionContext, database: DatabaseResource
) -> Iterator[dg.AssetCheckResult]:
    if _selected(context, FETCH_FAILURE_RATE):
        result = failure_rate_result(database.get_engine(), context.run.run_id, max_failure_rate())
        yield _for(FETCH_FAILURE_RATE, result)
    if _selected(context, FETCH_NOT_STOPPED):
        metadata = latest_metadata(context, qualification_responses.key)
        yield _for(FETCH_NOT_STOPPED, quota_stop_result(metadata))


@dg.multi_asset_check(
    specs=[COMPANIES_FRESH, NATURAL_KEYS_UNIQUE, ONE_OPEN_VERSION, NO_ANOMALIES_OR_DRIFT],
    can_subset=True,
)
def normalized_checks(
    context: dg.AssetCheckExecutionContext, database: DatabaseResource
) -> Iterator[dg.AssetCheckResult]:
    engine = database.get_engine()
    if _selected(context, COMPANIES_FRESH):
        yield _for(COMPANIES_FRESH, freshness_result(engine, refresh_interval(), utcnow()))
    if _selected(context, NATURAL_KEYS_UNIQUE):
        yield _for(NATURAL_KEYS_UNIQUE, natural_key_result(engine))
    if _selected(context, ONE_OPEN_VERSION):
        yield _for(ONE_OPEN_VERSION, open_version_result(engine))
    if _selected(context, NO_ANOMALIES_OR_DRIFT):
        metadata = latest_metadata(context, dg.AssetKey("licenses"))
        yield _for(NO_ANOMALIES_OR_DRIFT, anomalies_result(metadata))


juhe_checks = [fetch_checks, normalized_checks]
