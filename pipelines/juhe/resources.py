"""JuheResource: the juhe.cn ConLicByName API as Dagster sees it.

The key comes from `dg.EnvVar("JUHE_API_KEY")`, so run config and the event log hold the
variable's name, never its value. Other settings default to the environment (`Settings`).
"""

from collections.abc import Callable, Sequence

import dagster as dg
from pydantic import Field
from sqlalchemy.engine import Engine

from pipelines.juhe.client import JuheClient
from pipelines.juhe.due import DueCompany
from pipelines.juhe.fetcher import (
    FetchProgress,
    FetchReport,
    default_concurrency,
    fetch_companies,
)
from pipelines.juhe.ratelimit import SharedRateLimiter
from pipelines.settings import Secret, Settings


class JuheResource(dg.ConfigurableResource):
    """Rate-limited, retrying access to ConLicByName.

    Zero or empty fields mean "from the environment"."""

    api_key: str = Field(description="the juhe key; pass dg.EnvVar('JUHE_API_KEY')")
    base_url: str = Field(default="", description="full endpoint URL; empty: JUHE_BASE_URL")
    qps: float = Field(default=0.0, description="requests per second; 0: JUHE_QPS")
    concurrency: int = Field(default=0, description="requests in flight; 0: enough to hide latency")
    max_attempts: int = Field(default=4, description="HTTP attempts per company per run")
    connect_timeout: float = 5.0
    read_timeout: float = 15.0

    def settings(self) -> Settings:
        return Settings.from_env()

    def effective_qps(self) -> float:
        return self.qps or self.settings().juhe_qps

    def effective_concurrency(self) -> int:
        return self.concurrency or default_concurrency(self.effective_qps())

    def fetch(
        self,
        engine: Engine,
        database_url: str,
        companies: Sequence[DueCompany],
        *,
        run_id: str,
        progress: Callable[[FetchProgress], None] | None = None,
    ) -> FetchReport:
        settings = self.settings()
        client = JuheClient(
            self.base_url or settings.juhe_base_url,
            Secret(self.api_key),
            connect_timeout=self.connect_timeout,
            read_timeout=self.read_timeout,
            max_connections=self.effective_concurrency() + 4,
        )
        limiter = SharedRateLimiter.for_database(database_url, self.effective_qps())
        with client, limiter:
            return fetch_companies(
                engine,
                companies,
                client,
                limiter,
                run_id=run_id,
                concurrency=self.effective_concurrency(),
                max_attempts=self.max_attempts,
                daily_budget=settings.juhe_daily_budget,
                price_per_call=settings.juhe_price_per_call,
                progress=progress,
            )
