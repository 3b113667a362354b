"""JuheResource: the juhe.cn ConLicByName API as Dagster sees it.

Deployment settings come from the environment only (`pipelines.settings`, rule in
`pipelines.resources`): the endpoint (`JUHE_BASE_URL`), the key (`JUHE_API_KEY`), the QPS ceiling
(`JUHE_QPS`) and the daily budget (`JUHE_DAILY_BUDGET`). The fields show what the code location
loaded — the key only as the name of its variable — so the UI's resource page shows what a run
uses. A run's config may lower `qps`, `daily_budget` and `max_attempts`, never raise them, may ask
for at most MAX_CONCURRENCY requests in flight, and may not change `base_url`, `api_key` or the
timeouts (juhe bills a request it answered after we gave up on it: a tiny timeout buys every
answer up to four times and records none): such a run is refused before any request leaves.
"""

import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Optional

import dagster as dg
from pydantic import Field, field_serializer
from sqlalchemy.engine import Engine

from pipelines.juhe.client import JuheClient
from pipelines.juhe.due import DueCompany
from pipelines.juhe.fetcher import (
    MAX_CONCURRENCY,
    FetchProgress,
    FetchReport,
    default_concurrency,
    fetch_companies,
)
from pipelines.juhe.ratelimit import SharedRateLimiter
from pipelines.resources import (
    LaunchConfig,
    LaunchConfigError,
    from_environment,
    launch_config,
    refuse_launch_changes,
)
from pipelines.settings import DEFAULT_BASE_URL, Settings

MAX_ATTEMPTS = 4
CONNECT_TIMEOUT_S = 5.0
READ_TIMEOUT_S = 15.0


def fixed_in_code(seconds: float) -> str:
    return f"zizhi's code ({seconds:g} s)"


@dataclass(frozen=True)
class FetchLimits:
    """What one run may spend: the environment's limits, or lower ones its config asked for."""

    qps: float
    daily_budget: int | None
    max_attempts: int


class JuheResource(dg.ConfigurableResource):
    """Rate-limited, retrying access to ConLicByName.

    Endpoint, key, QPS ceiling and daily budget come from the environment and the timeouts from
    the code; the fields show the values the code location loaded. A run may lower qps,
    daily_budget and max_attempts, and set concurrency up to MAX_CONCURRENCY."""

    api_key: str = Field(
        default=dg.EnvVar("JUHE_API_KEY"),
        repr=False,
        description="JUHE_API_KEY, as dg.EnvVar (read-only: setting it at launch is refused)",
    )
    base_url: str = Field(
        default=DEFAULT_BASE_URL,
        description="JUHE_BASE_URL when the code location loaded (read-only: a run always uses "
        "JUHE_BASE_URL; setting it at launch is refused)",
    )
    qps: float = Field(
        default=10.0, gt=0, description="requests per second: JUHE_QPS, or lower for one run"
    )
    daily_budget: Optional[int] = Field(
        default=None,
        ge=1,
        description="calls per Asia/Shanghai day: JUHE_DAILY_BUDGET (null: unlimited), or lower "
        "for one run",
    )
    max_attempts: int = Field(
        default=MAX_ATTEMPTS,
        ge=1,
        description=f"HTTP attempts per company per run: {MAX_ATTEMPTS}, or fewer for one run",
    )
    concurrency: int = Field(
        default=0,
        ge=0,
        le=MAX_CONCURRENCY,
        description=f"requests in flight, at most {MAX_CONCURRENCY}; 0: enough to hide latency",
    )
    connect_timeout: float = Field(
        default=CONNECT_TIMEOUT_S,
        gt=0,
        description="seconds to connect (read-only: setting it at launch is refused)",
    )
    read_timeout: float = Field(
        default=READ_TIMEOUT_S,
        gt=0,
        description="seconds to wait for an answer (read-only: setting it at launch is refused)",
    )

    @field_serializer("api_key")
    def _hide_api_key(self, _value: str) -> str:
        return "***"

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        settings = Settings.from_env()
        launch = launch_config(context)
        key = settings.juhe_api_key.get_secret_value()
        refuse_launch_changes(
            self,
            launch,
            {
                "base_url": (from_environment("JUHE_BASE_URL"), [settings.juhe_base_url]),
                "api_key": (from_environment("JUHE_API_KEY"), [key]),
                "connect_timeout": (fixed_in_code(CONNECT_TIMEOUT_S), [CONNECT_TIMEOUT_S]),
                "read_timeout": (fixed_in_code(READ_TIMEOUT_S), [READ_TIMEOUT_S]),
            },
        )
        self.limits(settings, launch)

    def limits(self, settings: Settings, launch: LaunchConfig) -> FetchLimits:
        """The environment's limits, or lower ones this run's config asked for; a wider ask is
        refused (LaunchConfigError)."""

        def refuse(name: str, why: str) -> LaunchConfigError:
            return LaunchConfigError(
                f"{launch.path(name)}={getattr(self, name)} is {why}: a run may lower it, never "
                "raise it"
            )

        qps = self.qps if launch.asks("qps") else settings.juhe_qps
        if qps > settings.juhe_qps:
            raise refuse("qps", f"above the ceiling JUHE_QPS={settings.juhe_qps:g}")
        ceiling = settings.juhe_daily_budget
        budget = self.daily_budget if launch.asks("daily_budget") else ceiling
        if ceiling is not None and (budget is None or budget > ceiling):
            raise refuse("daily_budget", f"above the budget JUHE_DAILY_BUDGET={ceiling}")
        attempts = self.max_attempts if launch.asks("max_attempts") else MAX_ATTEMPTS
        if attempts > MAX_ATTEMPTS:
            raise refuse("max_attempts", f"above {MAX_ATTEMPTS}")
        return FetchLimits(qps=qps, daily_budget=budget, max_attempts=attempts)

    def fetch(
        self,
        engine: Engine,
        database_url: str,
        companies: Sequence[DueCompany],
        *,
        run_id: str,
        progress: Callable[[FetchProgress], None] | None = None,
        selected_at: dt.datetime | None = None,
    ) -> FetchReport:
        """Fetch `companies`, found due at `selected_at` (see `fetch_companies`)."""
        settings = Settings.from_env()
        limits = self.limits(settings, launch_config(self.get_resource_context()))
        log = dg.get_dagster_logger()
        if settings.juhe_insecure_http_warning:
            log.warning(settings.juhe_insecure_http_warning)
        log.info(
            f"calling {settings.juhe_base_url} at most {limits.qps:g} times a second, "
            f"{limits.max_attempts} attempts per company, daily budget "
            f"{limits.daily_budget or 'unlimited'}"
        )
        concurrency = self.concurrency or default_concurrency(limits.qps)
        client = JuheClient(
            settings.juhe_base_url,
            settings.juhe_api_key,
            connect_timeout=self.connect_timeout,
            read_timeout=self.read_timeout,
            deadline=settings.juhe_request_deadline_s,
            max_connections=concurrency + 4,
            max_body_bytes=settings.juhe_max_body_bytes,
        )
        limiter = SharedRateLimiter.for_database(
            database_url, limits.qps, margin_ms=settings.juhe_rate_margin_ms
        )
        with client, limiter:
            return fetch_companies(
                engine,
                companies,
                client,
                limiter,
                run_id=run_id,
                concurrency=concurrency,
                max_attempts=limits.max_attempts,
                daily_budget=limits.daily_budget,
                price_per_call=settings.juhe_price_per_call,
                progress=progress,
                selected_at=selected_at,
            )
