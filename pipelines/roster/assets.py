"""company_roster: the user's company list, validated, deduplicated and upserted into companies."""

import time
from dataclasses import asdict
from pathlib import Path

import dagster as dg
from pydantic import Field

from models import utcnow
from pipelines.metadata import counts_markdown, markdown_table
from pipelines.resources import DatabaseResource
from pipelines.roster.reader import RosterFileError, RosterLimits
from pipelines.roster.store import store_roster
from pipelines.roster.validate import load_roster
from pipelines.settings import Settings


class RosterConfig(dg.Config):
    path: str = Field(default="", description="roster file or folder; empty: ROSTER_PATH")


def roster_path(configured: str) -> Path:
    if configured:
        return Path(configured)
    path = Settings.from_env().roster_path
    if path is None:
        raise dg.Failure(
            description="No roster: set ROSTER_PATH to a CSV/XLSX file or a folder of them "
            "(or give the company_roster asset a `path` in its run config).",
            allow_retries=False,
        )
    return path


@dg.asset(
    group_name="roster",
    kinds={"csv", "xlsx", "sql"},
    code_version="1",
    description="The company list (ROSTER_PATH: CSV in UTF-8/BOM/GBK, XLSX, or a folder), "
    "validated "
    "and deduplicated into `companies`; bad rows land in `roster_rejects` with a reason.",
)
def company_roster(
    context: dg.AssetExecutionContext, config: RosterConfig, database: DatabaseResource
) -> dg.MaterializeResult:
    started = time.perf_counter()
    engine = database.get_engine()
    path = roster_path(config.path)
    limits = RosterLimits.from_settings(Settings.from_env())
    try:
        result = load_roster(path, limits=limits)
    except RosterFileError as error:
        raise dg.Failure(
            description=f"Roster {path} could not be read: {error}", allow_retries=False
        ) from error
    report = store_roster(engine, result, now=utcnow())
    context.log.info(
        f"roster {path}: {report.accepted} companies accepted, {report.rejected} rows rejected, "
        f"{report.inserted} new, {report.deactivated} dropped from the roster"
    )
    if not result.complete:
        context.log.warning("The roster was not read completely: no company was deactivated.")
    examples = [(r.source, r.row_number, r.reason) for r in result.rejects[:20]]
    return dg.MaterializeResult(
        metadata={
            **{k: v for k, v in asdict(report).items() if isinstance(v, int)},
            "roster_path": str(path),
            "roster_limits": dg.MetadataValue.json(asdict(limits)),
            "seconds": dg.MetadataValue.float(round(time.perf_counter() - started, 3)),
            "complete": result.complete,
            "shards_touched": sorted(report.shards_touched),
            "reject_reasons": dg.MetadataValue.md(counts_markdown("reason", report.reasons)),
            "rejects_preview": dg.MetadataValue.md(
                markdown_table(["source", "row", "reason"], examples) if examples else "no rejects"
            ),
        }
    )
