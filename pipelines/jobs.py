"""The refresh job and the nightly schedule that runs it over every shard at once."""

import dagster as dg

from pipelines.partitions import range_tags

refresh_job = dg.define_asset_job(
    "refresh_job",
    selection=dg.AssetSelection.all(),
    description="Roster → fetch the due companies of the selected shards → normalize → report.",
)


@dg.schedule(
    job=refresh_job,
    cron_schedule="0 2 * * *",
    execution_timezone="Asia/Shanghai",
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Nightly refresh of every shard in one run, 02:00 Asia/Shanghai.",
)
def nightly_refresh_schedule(context: dg.ScheduleEvaluationContext) -> dg.RunRequest:
    scheduled = context.scheduled_execution_time
    return dg.RunRequest(
        run_key=f"nightly-{scheduled:%Y-%m-%d}" if scheduled else None,
        tags={**range_tags(), "zizhi/trigger": "nightly"},
    )
