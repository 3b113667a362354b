"""The one Definitions object of zizhi (workspace.yaml points here)."""

from __future__ import annotations

import dagster as dg

from pipelines.analytics.assets import qualification_report
from pipelines.jobs import nightly_refresh_schedule, refresh_job
from pipelines.juhe.assets import normalized_tables, qualification_responses
from pipelines.juhe.checks import juhe_checks
from pipelines.juhe.resources import JuheResource
from pipelines.resources import DatabaseResource
from pipelines.roster.assets import company_roster
from pipelines.roster.checks import roster_rejects
from pipelines.roster.sensors import roster_sensor

defs = dg.Definitions(
    assets=[company_roster, qualification_responses, normalized_tables, qualification_report],
    asset_checks=[roster_rejects, *juhe_checks],
    jobs=[refresh_job],
    schedules=[nightly_refresh_schedule],
    sensors=[roster_sensor],
    # A run is a short sequence of steps (roster → fetch → normalize → checks → report): one
    # process per run instead of one per step saves seconds of start-up per step.
    executor=dg.in_process_executor,
    resources={
        "database": DatabaseResource(),
        "juhe": JuheResource(api_key=dg.EnvVar("JUHE_API_KEY")),
    },
)
