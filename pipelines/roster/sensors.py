"""roster_sensor: a changed roster triggers the roster asset and the shards of new companies.

It watches exactly the files the reader reads (`roster_sources`): `.tsv` files in a folder count,
Excel's `~$` lock files and hidden files do not, and `file.xlsx#Sheet` watches that workbook. It
starts stopped (Dagster's convention): turn it on in the UI or with
`dagster sensor start roster_sensor`.
"""

import hashlib
import json
from pathlib import Path

import dagster as dg
import sqlalchemy as sa

from models import Company
from pipelines.jobs import refresh_job
from pipelines.juhe.assets import NORMALIZED_TABLES
from pipelines.partitions import range_tags
from pipelines.resources import DatabaseResource
from pipelines.roster.assets import roster_problem
from pipelines.roster.reader import RosterFileError, RosterLimits, roster_sources
from pipelines.roster.validate import load_roster
from pipelines.settings import Settings
from pipelines.shards import shard_key


def fingerprint(path: Path) -> str:
    """A digest of the roster's sources (names, sheets) and contents: equal exactly when the
    reader would read the same thing. Raises RosterFileError when there is nothing to read."""
    digest = hashlib.sha256()
    for source in roster_sources(path):
        digest.update(source.label.encode() + b"\0")
        with source.path.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def shards_needing_fetch(
    database: DatabaseResource, path: Path, limits: RosterLimits | None = None
) -> list[int]:
    """Shards of roster companies that are new or were inactive: not yet fetched for this roster."""
    entries = load_roster(path, limits=limits).entries
    keys = {entry.match_key: entry.shard for entry in entries}
    engine = database.get_engine()
    with engine.connect() as conn:
        active = set(conn.execute(sa.select(Company.match_key).where(Company.active)).scalars())
    return sorted({shard for key, shard in keys.items() if key not in active})


@dg.sensor(
    job=refresh_job,
    minimum_interval_seconds=60,
    default_status=dg.DefaultSensorStatus.STOPPED,
    description="Watches ROSTER_PATH; on a change, loads the roster and fetches the new "
    "companies' shards. Starts stopped: turn it on here or with "
    "`dagster sensor start roster_sensor`.",
)
def roster_sensor(
    context: dg.SensorEvaluationContext, database: DatabaseResource
) -> dg.SensorResult | dg.SkipReason:
    settings = Settings.from_env()
    path = settings.roster_path
    if path is None:
        return dg.SkipReason("ROSTER_PATH is not set")
    try:
        current = fingerprint(path)
    except RosterFileError as error:  # missing, or a folder without roster files
        return dg.SkipReason(f"ROSTER_PATH: {roster_problem(error, path)}")
    except OSError as error:  # a file removed or locked while it was read: try at the next tick
        why = error.strerror or type(error).__name__  # str(error) would repeat the path
        return dg.SkipReason(f"the roster (ROSTER_PATH) could not be read now: {why}")
    previous = json.loads(context.cursor).get("fingerprint") if context.cursor else None
    if current == previous:
        return dg.SkipReason("roster unchanged")
    cursor = json.dumps({"fingerprint": current})
    try:
        shards = shards_needing_fetch(database, path, RosterLimits.from_settings(settings))
    except RosterFileError as error:
        # Still run the roster asset: it records the problem as a reject a person can read.
        context.log.warning(
            f"the roster (ROSTER_PATH) could not be read: {roster_problem(error, path)}"
        )
        shards = []
    selection = [dg.AssetKey("company_roster")]
    tags = {"zizhi/trigger": "roster_sensor"}
    if shards:
        fetch_and_normalize = ("qualification_responses", *NORMALIZED_TABLES)
        selection += [dg.AssetKey(k) for k in fetch_and_normalize]
        tags |= range_tags(shard_key(shards[0]), shard_key(shards[-1]))
    request = dg.RunRequest(run_key=f"roster-{current[:16]}", asset_selection=selection, tags=tags)
    return dg.SensorResult(run_requests=[request], cursor=cursor)
