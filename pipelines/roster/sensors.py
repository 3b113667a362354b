"""roster_sensor: a changed roster triggers the roster asset and the shards of new companies."""

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
from pipelines.roster.reader import RosterFileError
from pipelines.roster.validate import load_roster
from pipelines.settings import Settings
from pipelines.shards import shard_key

ROSTER_SUFFIXES = {".csv", ".xlsx", ".xlsm"}


def roster_files(path: Path) -> list[Path]:
    if path.is_dir():
        return sorted(p for p in path.iterdir() if p.suffix.lower() in ROSTER_SUFFIXES)
    return [path] if path.exists() else []


def fingerprint(path: Path) -> str:
    """A digest of the roster's names and contents: equal exactly when nothing changed."""
    digest = hashlib.sha256()
    for file in roster_files(path):
        digest.update(file.name.encode())
        with file.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def shards_needing_fetch(database: DatabaseResource, path: Path) -> list[int]:
    """Shards of roster companies that are new or were inactive: not yet fetched for this roster."""
    entries = load_roster(path).entries
    keys = {entry.match_key: entry.shard for entry in entries}
    engine = database.get_engine()
    with engine.connect() as conn:
        active = set(conn.execute(sa.select(Company.match_key).where(Company.active)).scalars())
    return sorted({shard for key, shard in keys.items() if key not in active})


@dg.sensor(
    job=refresh_job,
    minimum_interval_seconds=60,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Watches ROSTER_PATH; on a change, loads the roster and fetches the new "
    "companies' shards.",
)
def roster_sensor(
    context: dg.SensorEvaluationContext, database: DatabaseResource
) -> dg.SensorResult | dg.SkipReason:
    path = Settings.from_env().roster_path
    if path is None:
        return dg.SkipReason("ROSTER_PATH is not set")
    if not roster_files(path):
        return dg.SkipReason(f"roster {path} does not exist or holds no CSV/XLSX file")
    current = fingerprint(path)
    previous = json.loads(context.cursor).get("fingerprint") if context.cursor else None
    if current == previous:
        return dg.SkipReason("roster unchanged")
    cursor = json.dumps({"fingerprint": current})
    try:
        shards = shards_needing_fetch(database, path)
    except RosterFileError as error:
        # Still run the roster asset: it records the problem as a reject a person can read.
        context.log.warning(f"roster {path} could not be read: {error}")
        shards = []
    selection = [dg.AssetKey("company_roster")]
    tags = {"zizhi/trigger": "roster_sensor"}
    if shards:
        fetch_and_normalize = ("qualification_responses", *NORMALIZED_TABLES)
        selection += [dg.AssetKey(k) for k in fetch_and_normalize]
        tags |= range_tags(shard_key(shards[0]), shard_key(shards[-1]))
    request = dg.RunRequest(run_key=f"roster-{current[:16]}", asset_selection=selection, tags=tags)
    return dg.SensorResult(run_requests=[request], cursor=cursor)
