"""The Definitions load and every asset, job, schedule, sensor and check resolves."""

from __future__ import annotations

import datetime as dt

import dagster as dg

from pipelines.definitions import defs
from pipelines.partitions import RANGE_END_TAG, RANGE_START_TAG

EXPECTED_ASSETS = {
    "company_roster",
    "qualification_responses",
    "companies",
    "licenses",
    "license_names",
    "license_versions",
    "license_changes",
    "qualification_report",
}


def test_definitions_load_and_resolve_everything() -> None:
    dg.Definitions.validate_loadable(defs)
    assert {key.to_user_string() for key in defs.resolve_all_asset_keys()} == EXPECTED_ASSETS
    graph = defs.resolve_asset_graph()
    check_names = {key.name for key in graph.asset_check_keys}
    assert check_names == {
        "roster_rejects",
        "fetch_failure_rate",
        "fetch_not_stopped",
        "companies_fresh",
        "natural_keys_unique",
        "one_open_version",
        "no_anomalies_or_drift",
    }
    job = defs.resolve_job_def("refresh_job")
    assert job.partitions_def is not None and len(job.partitions_def.get_partition_keys()) == 32
    assert (
        defs.resolve_schedule_def("nightly_refresh_schedule").execution_timezone == "Asia/Shanghai"
    )
    assert defs.resolve_sensor_def("roster_sensor").job_name == "refresh_job"
    for job_def in defs.resolve_all_job_defs():
        assert job_def.name


def test_fetch_asset_sits_in_the_juhe_api_pool_and_runs_shards_in_one_run() -> None:
    fetch = defs.resolve_assets_def("qualification_responses")
    assert fetch.op.pool == "juhe_api"
    assert fetch.backfill_policy == dg.BackfillPolicy.single_run()
    normalized = defs.resolve_assets_def("licenses")
    assert normalized.backfill_policy == dg.BackfillPolicy.single_run()


def test_nightly_schedule_starts_stopped() -> None:
    """A fresh deployment spends no paid call until someone turns the schedule on."""
    schedule = defs.resolve_schedule_def("nightly_refresh_schedule")
    assert schedule.default_status == dg.DefaultScheduleStatus.STOPPED


def test_nightly_schedule_yields_one_run_over_all_shards() -> None:
    schedule = defs.resolve_schedule_def("nightly_refresh_schedule")
    assert schedule.cron_schedule == "0 2 * * *"
    when = dt.datetime(2026, 11, 29, 2, 0, tzinfo=dt.timezone(dt.timedelta(hours=8)))
    with dg.instance_for_test() as instance:
        context = dg.build_schedule_context(instance=instance, scheduled_execution_time=when)
        result = schedule.evaluate_tick(context)
    assert len(result.run_requests or []) == 1
    request = result.run_requests[0]
    assert request.tags[RANGE_START_TAG] == "00"
    assert request.tags[RANGE_END_TAG] == "31"
    assert request.run_key == "nightly-2026-11-29"
