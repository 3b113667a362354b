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
    # Stopped until someone turns it on (`dagster schedule start nightly_refresh_schedule`, or
    # the UI toggle): a fresh deployment spends no paid calls on its own.
    default_status=dg.DefaultScheduleStatus.STOPPED,
    description="Nightly refresh of every shard in one run, 02:00 Asia/Shanghai. Starts stopped: "
    "turn it on in the UI or with `dagster schedule start nightly_refresh_schedule`.",
)
def nightly_refresh_schedule(context: dg.ScheduleEvaluationContext) -> dg.RunRequest:
    scheduled = context.scheduled_execution_time
    return dg.RunRequest(
        run_key=f"nightly-{scheduled:%Y-%m-%d}" if scheduled else None,
        tags={**range_tags(), "zizhi/trigger": "nightly"},
    )
