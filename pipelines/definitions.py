"""The one Definitions object of zizhi (workspace.yaml points here).

The resources get the deployment's settings as concrete values, read from the environment when the
code location loads, so the UI's resource page shows what a run will use (the key only as the name
of its variable). A run re-reads the same environment and refuses a launch-time change
(pipelines/resources.py).
"""

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
from pipelines.settings import Settings


def deployment_resources(settings: Settings) -> dict[str, dg.ConfigurableResource]:
    return {
        "database": DatabaseResource(url=settings.shown_database_url),
        "juhe": JuheResource(
            api_key=dg.EnvVar("JUHE_API_KEY"),
            base_url=settings.juhe_base_url,
            qps=settings.juhe_qps,
            daily_budget=settings.juhe_daily_budget,
        ),
    }


defs = dg.Definitions(
    assets=[company_roster, qualification_responses, normalized_tables, qualification_report],
    asset_checks=[roster_rejects, *juhe_checks],
    jobs=[refresh_job],
    schedules=[nightly_refresh_schedule],
    sensors=[roster_sensor],
    # A run is a short sequence of steps (roster → fetch → normalize → checks → report): one
    # process per run instead of one per step saves seconds of start-up per step.
    executor=dg.in_process_executor,
    resources=deployment_resources(Settings.from_env()),
)
