"""Preparing the Dagster instance under DAGSTER_HOME: its dagster.yaml and the juhe_api pool."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import dagster as dg

from pipelines.db import PROJECT_ROOT, private_folder

JUHE_POOL = "juhe_api"
DEFAULT_POOL_LIMIT = 2


def dagster_home() -> Path:
    home = Path(os.environ.get("DAGSTER_HOME") or PROJECT_ROOT / ".dagster_home").resolve()
    os.environ["DAGSTER_HOME"] = str(home)
    return home


def prepare_instance() -> dg.DagsterInstance:
    """Create DAGSTER_HOME (owner only) with zizhi's dagster.yaml if needed, and set the juhe_api
    pool limit."""
    home = private_folder(dagster_home())
    config = home / "dagster.yaml"
    if not config.exists():
        shutil.copyfile(PROJECT_ROOT / "deploy" / "dagster.yaml", config)
    instance = dg.DagsterInstance.get()
    limit = int(os.environ.get("ZIZHI_JUHE_POOL_LIMIT") or DEFAULT_POOL_LIMIT)
    instance.event_log_storage.set_concurrency_slots(JUHE_POOL, limit)
    return instance
