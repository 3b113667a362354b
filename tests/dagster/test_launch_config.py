"""Launch-time config cannot redirect the key, raise the rate or swap the database.

Anyone who reaches the UI can launch a run with any resource config. Each attempt to change a
deployment setting is refused before a request leaves or a database is opened; a run may only
narrow the limits. A second sandbox plays "another host" and must receive nothing.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import dagster as dg
import pytest
import sqlalchemy as sa
from dagster_graphql.test.utils import (
    define_out_of_process_context,
    execute_dagster_graphql,
    infer_job_selector,
    infer_resource_selector,
)

from juhe_sandbox.server import SandboxServer
from pipelines.db import PROJECT_ROOT
from pipelines.definitions import defs, deployment_resources
from pipelines.juhe.fetcher import MAX_CONCURRENCY
from pipelines.partitions import range_tags
from pipelines.settings import Settings
from tests.dagster.helpers import counts, write_roster
from tests.fixtures_sandbox import SandboxFactory

# Heavy or timing-sensitive: one xdist worker runs this group in sequence (see run_suites.sh).
pytestmark = pytest.mark.xdist_group("heavy")

KEY = "zk-LAUNCH-0b7d5e2a9c41f836"
OTHER_KEY = "zk-OTHER-77aa01c3de5f9b20"


@pytest.fixture
def deployment(
    engine: sa.Engine,
    sandbox_factory: SandboxFactory,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> SandboxServer:
    """The deployment's own sandbox (key KEY, 8 companies on the roster), set in the environment."""
    sandbox = sandbox_factory(api_key=KEY)
    roster = write_roster(tmp_path / "roster.csv", sandbox.dataset.companies[:8])
    for name, value in {
        "ROSTER_PATH": str(roster),
        "JUHE_BASE_URL": sandbox.url,
        "JUHE_API_KEY": KEY,
        "JUHE_QPS": "100",
        "OTHER_KEY": OTHER_KEY,
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("JUHE_DAILY_BUDGET", raising=False)
    return sandbox


@pytest.fixture
def elsewhere(sandbox_factory: SandboxFactory) -> SandboxServer:
    """Another host, accepting any of the keys: it must receive 0 requests."""
    return sandbox_factory(api_key=KEY)


def juhe_overrides(elsewhere: SandboxServer) -> dict[str, tuple[dict[str, Any], str]]:
    """Each attempt (resource config) and what the refusal must name."""
    return {
        "endpoint": ({"base_url": elsewhere.url}, "JUHE_BASE_URL"),
        "endpoint from another variable": ({"base_url": {"env": "JUHE_API_KEY"}}, "JUHE_BASE_URL"),
        "key": ({"api_key": OTHER_KEY}, "JUHE_API_KEY"),
        "key from another variable": ({"api_key": {"env": "OTHER_KEY"}}, "JUHE_API_KEY"),
        "higher QPS": ({"qps": 1000}, "JUHE_QPS"),
        "more attempts": ({"max_attempts": 9}, "max_attempts"),
        # juhe bills an answer we stopped waiting for: a tiny timeout buys each one 4 times
        "tiny read timeout": ({"read_timeout": 0.01}, "read_timeout"),
        "tiny connect timeout": ({"connect_timeout": 0.001}, "connect_timeout"),
        "longer read timeout": ({"read_timeout": 600}, "read_timeout"),
    }


def launch(run_config: dict[str, Any]) -> dg.ExecuteInProcessResult:
    with dg.instance_for_test() as instance:
        return defs.resolve_job_def("refresh_job").execute_in_process(
            instance=instance, run_config=run_config, tags=range_tags(), raise_on_error=False
        )


def refusal(result: dg.ExecuteInProcessResult) -> str:
    """The messages of the errors that failed the run, causes included."""
    messages = []
    for event in result.all_events:
        error = getattr(event.event_specific_data, "error", None) if event.is_failure else None
        while error is not None:
            messages.append(error.message)
            error = error.cause
    return "\n".join(messages)


@pytest.mark.parametrize(
    "attempt",
    [
        "endpoint",
        "endpoint from another variable",
        "key",
        "key from another variable",
        "higher QPS",
        "more attempts",
        "tiny read timeout",
        "tiny connect timeout",
        "longer read timeout",
    ],
)
def test_a_run_config_cannot_redirect_the_key_or_widen_the_limits(
    engine: sa.Engine, deployment: SandboxServer, elsewhere: SandboxServer, attempt: str
) -> None:
    config, named = juhe_overrides(elsewhere)[attempt]
    result = launch({"resources": {"juhe": {"config": config}}})
    assert not result.success
    said = refusal(result)
    assert "cannot be set when a run is launched" in said or "never raise it" in said
    assert named in said
    for secret in (KEY, OTHER_KEY):
        assert secret not in said
    assert elsewhere.stats()["requests"] == 0
    assert deployment.stats()["requests"] == 0  # refused before the first request
    assert counts(engine, "companies")["companies"] == 0  # and before any step ran


def test_a_run_config_cannot_raise_the_daily_budget(
    engine: sa.Engine, deployment: SandboxServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("JUHE_DAILY_BUDGET", "5")
    for budget in (6, None):
        result = launch({"resources": {"juhe": {"config": {"daily_budget": budget}}}})
        assert not result.success
        assert "JUHE_DAILY_BUDGET=5" in refusal(result)
    assert deployment.stats()["requests"] == 0


@pytest.mark.parametrize("concurrency", [65, 5000])
def test_a_run_config_cannot_start_more_than_max_concurrency_workers(
    engine: sa.Engine, deployment: SandboxServer, concurrency: int
) -> None:
    result = launch({"resources": {"juhe": {"config": {"concurrency": concurrency}}}})
    assert not result.success
    said = refusal(result)
    assert "concurrency" in said and f"less than or equal to {MAX_CONCURRENCY}" in said
    assert deployment.stats()["requests"] == 0
    assert counts(engine, "companies")["companies"] == 0


def test_a_run_config_cannot_swap_the_database(
    engine: sa.Engine, deployment: SandboxServer, tmp_path: Path
) -> None:
    other = tmp_path / "elsewhere.sqlite"
    result = launch({"resources": {"database": {"config": {"url": f"sqlite:///{other}"}}}})
    assert not result.success
    said = refusal(result)
    assert "resources.database.config.url cannot be set" in said and "DATABASE_URL" in said
    assert not other.exists()
    assert deployment.stats()["requests"] == 0


def test_a_run_config_may_narrow_the_limits(engine: sa.Engine, deployment: SandboxServer) -> None:
    """JUHE_QPS=100 and no budget in the environment; this run asks for 2 QPS and 4 calls."""
    result = launch({"resources": {"juhe": {"config": {"qps": 2, "daily_budget": 4}}}})
    assert result.success
    stats = deployment.stats()
    assert stats["requests"] == 4
    assert stats["max_in_window"] <= 2


def test_a_run_config_may_lower_the_attempts(
    engine: sa.Engine, deployment: SandboxServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Also: up to MAX_CONCURRENCY in flight, and the timeouts set to what they are (an equal
    value changes nothing)."""
    deployment.configure(faults={"10014": 1.0})  # every answer is transient
    config = {
        "max_attempts": 1,
        "concurrency": MAX_CONCURRENCY,
        "read_timeout": 15,
        "connect_timeout": 5.0,
    }
    result = launch({"resources": {"juhe": {"config": config}}})
    assert "cannot be set" not in refusal(result)
    assert deployment.stats()["requests"] == 8  # one attempt per company, not four


def test_the_resources_show_the_settings_a_run_uses() -> None:
    settings = Settings(
        database_url="postgresql://zizhi:pw-6d1c@db.internal:5432/zizhi",
        juhe_base_url="https://juhe-gateway.example.com/query",
        juhe_qps=7.0,
        juhe_daily_budget=900,
    )
    resources = deployment_resources(settings)
    database, juhe = resources["database"], resources["juhe"]
    assert database.url == "postgresql://zizhi:***@db.internal:5432/zizhi"
    assert (juhe.base_url, juhe.qps, juhe.daily_budget) == (settings.juhe_base_url, 7.0, 900)
    assert juhe.api_key == dg.EnvVar("JUHE_API_KEY")


# --- through Dagster's GraphQL API, as the UI launches runs ------------------------------------

LAUNCH = """
mutation Launch($params: ExecutionParams!) {
  launchRun(executionParams: $params) {
    __typename
    ... on LaunchRunSuccess { run { runId } }
    ... on RunConfigValidationInvalid { errors { message } }
    ... on PythonError { message }
  }
}"""
RESOURCE = """
query Resource($selector: ResourceSelector!) {
  topLevelResourceDetailsOrError(resourceSelector: $selector) {
    __typename
    ... on ResourceDetails { configuredValues { key value type } }
  }
}"""


def wait_for(instance: dg.DagsterInstance, run_ids: list[str], timeout: float = 240) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        runs = [instance.get_run_by_id(run_id) for run_id in run_ids]
        if all(run is not None and run.is_finished for run in runs):
            return
        time.sleep(0.5)
    raise TimeoutError(f"runs {run_ids} did not finish within {timeout:.0f} s")


@pytest.mark.slow
def test_the_ui_shows_the_settings_and_refuses_every_override(
    engine: sa.Engine, deployment: SandboxServer, elsewhere: SandboxServer, tmp_path: Path
) -> None:
    """A code server and run workers in their own processes, as behind `make dev`; each run
    launched as the Launchpad does. (Every override is tried in process above.)"""
    other_database = tmp_path / "elsewhere.sqlite"
    overrides = juhe_overrides(elsewhere)
    attempts = [
        {"juhe": {"config": overrides[name][0]}}
        for name in ("endpoint", "key from another variable", "higher QPS")
    ] + [{"database": {"config": {"url": f"sqlite:///{other_database}"}}}]
    with (
        dg.instance_for_test(synchronous_run_coordinator=True) as instance,
        define_out_of_process_context(
            str(PROJECT_ROOT / "workspace.yaml"), None, instance
        ) as context,
    ):
        shown = execute_dagster_graphql(
            context, RESOURCE, {"selector": infer_resource_selector(context, "juhe")}
        ).data["topLevelResourceDetailsOrError"]
        values = {v["key"]: (v["value"], v["type"]) for v in shown["configuredValues"]}
        assert values["base_url"] == (json.dumps(deployment.url), "VALUE")
        assert values["api_key"] == ("JUHE_API_KEY", "ENV_VAR")
        assert values["qps"] == ("100.0", "VALUE")
        assert KEY not in json.dumps(shown)

        selector = infer_job_selector(context, "refresh_job")
        tags = [{"key": k, "value": v} for k, v in range_tags().items()]
        run_ids = []
        for resources in attempts:
            params = {
                "selector": selector,
                "runConfigData": {"resources": resources},
                "executionMetadata": {"tags": tags},
            }
            launched = execute_dagster_graphql(context, LAUNCH, {"params": params}).data
            assert launched["launchRun"]["__typename"] == "LaunchRunSuccess", launched
            run_ids.append(launched["launchRun"]["run"]["runId"])
        wait_for(instance, run_ids)
        for run_id, resources in zip(run_ids, attempts, strict=True):
            run = instance.get_run_by_id(run_id)
            assert run is not None and run.status == dg.DagsterRunStatus.FAILURE, resources
            said = "\n".join(
                error.to_string()
                for entry in instance.all_logs(run_id)
                if entry.dagster_event is not None
                and (error := getattr(entry.dagster_event.event_specific_data, "error", None))
            )
            assert "cannot be set when a run is launched" in said or "never raise it" in said
    assert elsewhere.stats()["requests"] == 0
    assert deployment.stats()["requests"] == 0
    assert not other_database.exists()
    assert counts(engine, "companies")["companies"] == 0
