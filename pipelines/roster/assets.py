"""company_roster: the user's company list, validated, deduplicated and upserted into companies."""

import time
from dataclasses import asdict
from pathlib import Path

import dagster as dg

from models import utcnow
from pipelines.metadata import counts_markdown, markdown_table
from pipelines.resources import DatabaseResource
from pipelines.roster.reader import RosterFileError, RosterLimits
from pipelines.roster.store import store_roster
from pipelines.roster.validate import RosterResult, load_roster
from pipelines.settings import Settings


def roster_path(settings: Settings) -> Path:
    """ROSTER_PATH, the only source of the roster: a run's config cannot name another file
    (anyone who reaches the UI could otherwise read any file the process can, and deactivate
    every company missing from it)."""
    if settings.roster_path is None:
        raise dg.Failure(
            description="No roster: set ROSTER_PATH to a CSV/XLSX file or a folder of them.",
            allow_retries=False,
        )
    return settings.roster_path


def roster_problem(error: RosterFileError, path: Path) -> str:
    """What is wrong with the roster, naming a file inside it but never repeating ROSTER_PATH."""
    return error.problem if error.source == str(path) else str(error)


def read_roster(path: Path, limits: RosterLimits) -> RosterResult:
    try:
        return load_roster(path, limits=limits)
    except RosterFileError as error:
        problem = roster_problem(error, path)
    # Raised outside the handler, so the event log holds no chained error repeating the path.
    raise dg.Failure(
        description=f"The roster (ROSTER_PATH) could not be read: {problem}", allow_retries=False
    )


@dg.asset(
    group_name="roster",
    kinds={"csv", "xlsx", "sql"},
    code_version="1",
    # No run config at all: Dagster refuses a run whose config gives this asset any field (a
    # `path` included) before the run starts; without a schema it would silently accept one.
    config_schema={},
    description="The company list (ROSTER_PATH: CSV in UTF-8/BOM/GBK, XLSX, or a folder), "
    "validated and deduplicated into `companies`; bad rows land in `roster_rejects` with a "
    "reason. The roster is always ROSTER_PATH: the asset takes no run config.",
)
def company_roster(
    context: dg.AssetExecutionContext, database: DatabaseResource
) -> dg.MaterializeResult:
    started = time.perf_counter()
    settings = Settings.from_env()
    path = roster_path(settings)
    engine = database.get_engine()
    limits = RosterLimits.from_settings(settings)
    result = read_roster(path, limits)
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
