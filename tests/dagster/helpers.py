"""Shared helpers for the Dagster-level tests: write rosters, run the refresh job, count rows."""

from __future__ import annotations

import csv
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import dagster as dg
import sqlalchemy as sa
import yaml
from sqlalchemy.engine import Engine

from pipelines.db import PROJECT_ROOT
from pipelines.definitions import defs
from pipelines.partitions import range_tags


def write_roster(path: Path, companies: Iterable[Any]) -> Path:
    """A UTF-8 roster CSV of sandbox companies (name and USCC as a user would export them)."""
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["企业名称", "统一社会信用代码"])
        for company in companies:
            writer.writerow([company.name, company.uscc or ""])
    return path


def deploy_config(name: str = "dagster.yaml") -> dict[str, Any]:
    return yaml.safe_load((PROJECT_ROOT / "deploy" / name).read_text())


def zizhi_instance(home: Path) -> Any:
    """A test instance with the event log of deploy/dagster.yaml (batching SQLite storage)."""
    storage = deploy_config()["event_log_storage"]
    overrides = {"event_log_storage": {**storage, "config": {"home": str(home)}}}
    return dg.instance_for_test(overrides=overrides)


def production_instance() -> Any:
    """A test instance with the storage of deploy/dagster.production.yaml; DAGSTER_PG_URL must
    name the database."""
    config = deploy_config("dagster.production.yaml")
    keys = ("run_storage", "event_log_storage", "schedule_storage")
    return dg.instance_for_test(overrides={k: config[k] for k in keys})


def run_refresh(
    instance: dg.DagsterInstance,
    *,
    first: str = "00",
    last: str = "31",
    force: bool = False,
    selection: Iterable[str] | None = None,
    normalize_mode: str = "auto",
) -> dg.ExecuteInProcessResult:
    job = defs.resolve_job_def("refresh_job")
    run_config: dict[str, Any] = {
        "ops": {
            "qualification_responses": {"config": {"force": force}},
            "normalized_tables": {"config": {"mode": normalize_mode}},
        }
    }
    if selection is not None:
        run_config["ops"] = {k: v for k, v in run_config["ops"].items() if k in selection}
    return job.execute_in_process(
        instance=instance,
        run_config=run_config,
        tags=range_tags(first, last),
        asset_selection=[dg.AssetKey(k) for k in selection] if selection else None,
        raise_on_error=False,
    )


def counts(engine: Engine, *tables: str) -> Mapping[str, int]:
    with engine.connect() as conn:
        return {
            t: int(conn.execute(sa.text(f"SELECT COUNT(*) FROM {t}")).scalar_one()) for t in tables
        }
