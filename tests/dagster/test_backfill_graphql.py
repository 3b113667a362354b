"""UI backfills, launched through Dagster's GraphQL API exactly as the UI launches them.

A real `dagster dev` (webserver + daemon) runs against the test database and the sandbox; the
backfills' runs are launched by the daemon as separate processes, as in production.
"""

from __future__ import annotations

import itertools
import socket
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa

from models import utcnow
from pipelines.db import PROJECT_ROOT
from pipelines.devserver import dagster_services
from pipelines.roster.store import store_roster
from pipelines.roster.validate import load_roster
from tests.conftest import wait_until
from tests.dagster.helpers import write_roster

# Heavy: one xdist worker runs this group in sequence (see run_suites.sh).
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("heavy")]

LAUNCH = """
mutation Launch($params: LaunchBackfillParams!) {
  launchPartitionBackfill(backfillParams: $params) {
    __typename
    ... on LaunchBackfillSuccess { backfillId }
    ... on PythonError { message }
  }
}"""
STATUS = """
query Status($id: String!) {
  partitionBackfillOrError(backfillId: $id) {
    __typename
    ... on PartitionBackfill { status }
    ... on PythonError { message }
  }
}"""
RUNS = """
query Runs($id: String!) {
  runsOrError(filter: {tags: [{key: "dagster/backfill", value: $id}]}) {
    ... on Runs { results { runId status } }
  }
}"""
NORMALIZED = ["companies", "licenses", "license_names", "license_versions", "license_changes"]
ENDED = ("SUCCESS", "FAILURE", "CANCELED")
# Generous bounds in seconds: on a fast machine start-up takes ~5 s and each wait at most ~35 s.
READY_WAIT = 180
BACKFILL_WAIT = 240


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def dagster_ui(database_url: str, sandbox, tmp_path: Path) -> Iterator[str]:
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text((PROJECT_ROOT / "deploy" / "dagster.yaml").read_text())
    env = {
        "DAGSTER_HOME": str(home),
        "DATABASE_URL": database_url,
        "JUHE_BASE_URL": sandbox.url,
        "JUHE_API_KEY": sandbox.config.api_key,
        "JUHE_QPS": "100",
    }
    with (
        (tmp_path / "dagster.log").open("w") as log,
        dagster_services(port=free_port(), env=env, log=log, ready_timeout=READY_WAIT) as url,
    ):
        yield f"{url}/graphql"


def contiguous_ranges(keys: list[str]) -> int:
    shards = sorted(int(k) for k in keys)
    return 1 + sum(1 for a, b in itertools.pairwise(shards) if b != a + 1)


def graphql(url: str, query: str, **variables: object) -> dict:
    response = httpx.post(url, json={"query": query, "variables": variables}, timeout=60)
    response.raise_for_status()
    body = response.json()
    assert "errors" not in body, body
    return body["data"]


def launch_backfill(url: str, assets: list[str], shards: list[str]) -> str:
    params = {"partitionNames": shards, "assetSelection": [{"path": [a]} for a in assets]}
    launched = graphql(url, LAUNCH, params=params)["launchPartitionBackfill"]
    assert launched["__typename"] == "LaunchBackfillSuccess", launched
    return str(launched["backfillId"])


def backfill_runs(url: str, backfill_id: str) -> list[dict]:
    return graphql(url, RUNS, id=backfill_id)["runsOrError"]["results"]


def check_runs(runs: list[dict], shards: list[str]) -> None:
    """All succeeded, one per contiguous range of the shards (BackfillPolicy.single_run())."""
    assert all(r["status"] == "SUCCESS" for r in runs), runs
    assert len(runs) == contiguous_ranges(shards), runs


def wait_for_runs(url: str, backfill_id: str, shards: list[str]) -> None:
    """Wait until the backfill has launched its runs and they have all ended."""

    def ended() -> list[dict] | None:
        runs = backfill_runs(url, backfill_id)
        if len(runs) < contiguous_ranges(shards) or not all(r["status"] in ENDED for r in runs):
            return None
        return runs

    what = f"the runs of backfill {backfill_id}"
    check_runs(wait_until(ended, within=BACKFILL_WAIT, what=what, poll=1), shards)


def wait_for_completion(url: str, backfill_id: str, shards: list[str]) -> None:
    """Wait for the daemon to mark the backfill done (on its first tick after the last run)."""

    def status() -> str | None:
        found = graphql(url, STATUS, id=backfill_id)["partitionBackfillOrError"]["status"]
        return None if found in ("REQUESTED", "CANCELING", "FAILING") else found

    found = wait_until(status, within=BACKFILL_WAIT, what=f"backfill {backfill_id}", poll=1)
    assert found in ("COMPLETED", "COMPLETED_SUCCESS"), found
    check_runs(backfill_runs(url, backfill_id), shards)


# The daemon evaluates backfills every 30 s (fixed in Dagster): a backfill's runs are submitted on
# the first tick after its launch and the backfill is marked done on a later one. The second
# backfill is launched as soon as the first one's runs have finished, so the tick that marks the
# first one done also submits the second one's runs: three ticks instead of four.
@pytest.mark.timeout(READY_WAIT + 4 * BACKFILL_WAIT + 120)  # above every bounded wait
def test_ui_backfill_of_three_shards_fetches_only_their_due_companies(
    engine, sandbox, dagster_ui, tmp_path
) -> None:
    roster = write_roster(tmp_path / "roster.csv", sandbox.dataset.companies[:60])
    store_roster(engine, load_roster(roster), now=utcnow())
    with engine.connect() as conn:
        by_shard = dict(conn.execute(sa.text("SELECT id, shard FROM companies")).all())
    shards = sorted({s for s in by_shard.values()})[:3]
    keys = [f"{s:02d}" for s in shards]
    expected = {cid for cid, shard in by_shard.items() if shard in shards}

    fetch = launch_backfill(dagster_ui, ["qualification_responses", *NORMALIZED], keys)
    wait_for_runs(dagster_ui, fetch, keys)

    with engine.connect() as conn:
        fetched = set(conn.execute(sa.text("SELECT company_id FROM raw_responses")).scalars())
        licences = conn.execute(sa.text("SELECT COUNT(*) FROM licenses")).scalar_one()
        history = conn.execute(sa.text("SELECT COUNT(*) FROM license_changes")).scalar_one()
    assert fetched == expected
    assert sandbox.stats()["requests"] == len(expected)
    assert licences > 0

    # A backfill of the normalized tables alone replays stored raw responses: no API call.
    calls_before = sandbox.stats()["requests"]
    replay = launch_backfill(dagster_ui, NORMALIZED, keys)
    wait_for_runs(dagster_ui, replay, keys)
    wait_for_completion(dagster_ui, fetch, keys)
    wait_for_completion(dagster_ui, replay, keys)
    assert sandbox.stats()["requests"] == calls_before
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT COUNT(*) FROM licenses")).scalar_one() == licences
        assert conn.execute(sa.text("SELECT COUNT(*) FROM license_changes")).scalar_one() == history
