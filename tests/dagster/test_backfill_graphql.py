"""UI backfills, launched through Dagster's GraphQL API exactly as the UI launches them.

A real `dagster dev` (webserver + daemon) runs against the test database and the sandbox; the
backfills' runs are launched by the daemon as separate processes, as in production.
"""

from __future__ import annotations

import itertools
import socket
import time
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
        dagster_services(port=free_port(), env=env, log=log) as url,
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


def run_backfill(url: str, assets: list[str], shards: list[str]) -> None:
    params = {"partitionNames": shards, "assetSelection": [{"path": [a]} for a in assets]}
    launched = graphql(url, LAUNCH, params=params)["launchPartitionBackfill"]
    assert launched["__typename"] == "LaunchBackfillSuccess", launched
    backfill_id = launched["backfillId"]
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        status = graphql(url, STATUS, id=backfill_id)["partitionBackfillOrError"]["status"]
        runs = graphql(url, RUNS, id=backfill_id)["runsOrError"]["results"]
        if (
            status not in ("REQUESTED", "CANCELING", "FAILING")
            and runs
            and all(r["status"] in ("SUCCESS", "FAILURE", "CANCELED") for r in runs)
        ):
            assert status in ("COMPLETED", "COMPLETED_SUCCESS"), (status, runs)
            assert all(r["status"] == "SUCCESS" for r in runs), runs
            # BackfillPolicy.single_run(): one run per contiguous range of the chosen shards
            assert len(runs) == contiguous_ranges(shards)
            return
        time.sleep(1)
    pytest.fail(f"backfill {backfill_id} did not finish: {status} {runs}")


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

    run_backfill(dagster_ui, ["qualification_responses", *NORMALIZED], keys)

    with engine.connect() as conn:
        fetched = set(conn.execute(sa.text("SELECT company_id FROM raw_responses")).scalars())
        licences = conn.execute(sa.text("SELECT COUNT(*) FROM licenses")).scalar_one()
        history = conn.execute(sa.text("SELECT COUNT(*) FROM license_changes")).scalar_one()
    assert fetched == expected
    assert sandbox.stats()["requests"] == len(expected)
    assert licences > 0

    # A backfill of the normalized tables alone replays stored raw responses: no API call.
    calls_before = sandbox.stats()["requests"]
    run_backfill(dagster_ui, NORMALIZED, keys)
    assert sandbox.stats()["requests"] == calls_before
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT COUNT(*) FROM licenses")).scalar_one() == licences
        assert conn.execute(sa.text("SELECT COUNT(*) FROM license_changes")).scalar_one() == history
