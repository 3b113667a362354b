"""juhe assets: raw responses fetched per shard, and the normalized tables built from them.

Each asset body orchestrates (select → call → write → report); the work lives in due.py,
fetcher.py and pipelines.normalize.
"""

import datetime as dt
import time
from typing import Literal

import dagster as dg
from pydantic import Field

from models import utcnow
from pipelines.juhe.due import count_due, select_due
from pipelines.juhe.fetcher import FetchProgress
from pipelines.juhe.reporting import fetch_metadata, normalize_metadata
from pipelines.juhe.resources import JuheResource
from pipelines.metadata import table_definition_metadata, table_metadata
from pipelines.normalize import normalize_pending, renormalize
from pipelines.partitions import shard_partitions, single_run
from pipelines.resources import DatabaseResource
from pipelines.roster.assets import company_roster
from pipelines.shards import shards_of_keys

# Infrastructure failures (a database restart, a lost connection) are retried by Dagster.
# Quota and maintenance stops end the step successfully; a fatal key error raises a Failure
# with allow_retries=False, so neither is ever retried.
infrastructure_retry = dg.RetryPolicy(
    max_retries=3, delay=10, backoff=dg.Backoff.EXPONENTIAL, jitter=dg.Jitter.PLUS_MINUS
)

NORMALIZED_TABLES = (
    "companies",
    "licenses",
    "license_names",
    "license_versions",
    "license_changes",
)
TABLE_DESCRIPTIONS = {
    "companies": "One row per roster company: identifiers, query, shard and fetch state.",
    "licenses": "Current state of every certificate, keyed by (company_id, category, lic_no); "
    "removed ones keep their row with removed_at set.",
    "license_names": "The lic_name entries of each licence's current version, with their grade.",
    "license_versions": "SCD2 history: every distinct source version of each licence.",
    "license_changes": "The change log: added, updated (fields, old and new values), removed, "
    "restored.",
}


class FetchConfig(dg.Config):
    force: bool = Field(
        default=False, description="re-fetch every active company, ignoring the due policy"
    )


class NormalizeConfig(dg.Config):
    mode: Literal["auto", "pending", "replay"] = Field(
        default="auto",
        description="pending: new raw responses only; replay: every stored raw response of the "
        "shards, in fetched order (after a parsing fix; no API call); auto: replay when this run "
        "does not also fetch",
    )


def refresh_interval() -> dt.timedelta:
    from pipelines.settings import Settings

    return dt.timedelta(days=Settings.from_env().refresh_interval_days)


@dg.asset(
    partitions_def=shard_partitions,
    backfill_policy=single_run,
    pool="juhe_api",
    deps=[company_roster],
    group_name="juhe",
    kinds={"python", "sql"},
    code_version="1",
    retry_policy=infrastructure_retry,
    description="Raw ConLicByName responses for the due companies of the selected shards, landed "
    "in `raw_responses` (every body, as it arrives) with one `api_calls` row per HTTP request.",
)
def qualification_responses(
    context: dg.AssetExecutionContext,
    config: FetchConfig,
    database: DatabaseResource,
    juhe: JuheResource,
) -> dg.MaterializeResult:
    engine = database.get_engine()
    shards = shards_of_keys(context.partition_keys)
    interval = refresh_interval()
    selected_at = utcnow()  # another run's attempt after this is not bought again (claims.py)
    due = select_due(
        engine, shards=shards, now=selected_at, refresh_interval=interval, force=config.force
    )
    context.log.info(f"{len(due)} companies due in {len(shards)} shard(s)")

    def progress(p: FetchProgress) -> None:
        context.log.info(p.describe())

    report = juhe.fetch(
        engine,
        database.resolved_url(),
        due,
        run_id=context.run.run_id,
        progress=progress,
        selected_at=selected_at,
    )
    remaining = count_due(engine, shards=shards, now=utcnow(), refresh_interval=interval)
    metadata = fetch_metadata(report, remaining_due=remaining)
    if report.stopped_by == "fatal":
        raise dg.Failure(description=report.stop_message, metadata=metadata, allow_retries=False)
    if report.stopped_by:
        context.log.warning(
            f"{report.stop_message} {remaining} companies remain due for the next run."
        )
    return dg.MaterializeResult(metadata=metadata)


def _fetches_in_this_run(context: dg.AssetExecutionContext) -> bool:
    selection = context.run.asset_selection
    return not selection or qualification_responses.key in selection


@dg.multi_asset(
    specs=[
        dg.AssetSpec(
            name,
            deps=[qualification_responses],
            partitions_def=shard_partitions,
            group_name="qualifications",
            kinds={"sql"},
            description=TABLE_DESCRIPTIONS[name],
            metadata=table_definition_metadata(name),
            code_version="1",
        )
        for name in NORMALIZED_TABLES
    ],
    partitions_def=shard_partitions,
    backfill_policy=single_run,
    retry_policy=infrastructure_retry,
    name="normalized_tables",
)
def normalized_tables(
    context: dg.AssetExecutionContext, config: NormalizeConfig, database: DatabaseResource
):  # type: ignore[no-untyped-def]
    """Flattens raw responses into the normalized tables, tracking every change."""
    engine = database.get_engine()
    shards = shards_of_keys(context.partition_keys)
    replay = config.mode == "replay" or (
        config.mode == "auto" and not _fetches_in_this_run(context)
    )
    if replay:
        context.log.info(f"Re-normalizing every stored raw response of {len(shards)} shard(s)")
    started = time.perf_counter()  # normalize's own work: not the metadata queries below
    normalize = renormalize if replay else normalize_pending
    report = normalize(engine, shards=shards, run_id=context.run.run_id)
    seconds = dg.MetadataValue.float(round(time.perf_counter() - started, 3))
    per_table = normalize_metadata(engine, report)
    for name in NORMALIZED_TABLES:
        yield dg.MaterializeResult(
            asset_key=name,
            metadata={
                **table_metadata(engine, name),
                **per_table.get(name, {}),
                "normalize_seconds": seconds,
            },
        )
