"""The roster sensor fires when the roster changes, for the shards of new companies only."""

from __future__ import annotations

import dagster as dg

from models import utcnow
from pipelines.definitions import defs
from pipelines.partitions import RANGE_END_TAG, RANGE_START_TAG
from pipelines.resources import DatabaseResource
from pipelines.roster.store import store_roster
from pipelines.roster.validate import load_roster
from tests.dagster.helpers import write_roster


def evaluate(instance: dg.DagsterInstance, cursor: str | None) -> dg.SensorResult | dg.SkipReason:
    sensor = defs.resolve_sensor_def("roster_sensor")
    context = dg.build_sensor_context(
        instance=instance, cursor=cursor, resources={"database": DatabaseResource()}
    )
    return sensor.evaluate_tick(context)


def test_sensor_fires_on_change_and_not_otherwise(engine, sandbox, tmp_path, monkeypatch) -> None:
    companies = [c for c in sandbox.dataset.companies if c.uscc][:12]
    path = write_roster(tmp_path / "roster.csv", companies[:10])
    monkeypatch.setenv("ROSTER_PATH", str(path))
    with dg.instance_for_test() as instance:
        first = evaluate(instance, None)
        assert len(first.run_requests) == 1
        assert dg.AssetKey("company_roster") in first.run_requests[0].asset_selection

        store_roster(engine, load_roster(path), now=utcnow())  # the run the sensor asked for
        unchanged = evaluate(instance, first.cursor)
        assert not unchanged.run_requests
        assert "unchanged" in (unchanged.skip_message or "")

        write_roster(path, companies[:12])  # two new companies
        changed = evaluate(instance, first.cursor)
        assert len(changed.run_requests) == 1
        request = changed.run_requests[0]
        from pipelines.shards import shard_of

        new_shards = sorted({shard_of(c.uscc) for c in companies[10:12]})
        assert request.tags[RANGE_START_TAG] == f"{new_shards[0]:02d}"
        assert request.tags[RANGE_END_TAG] == f"{new_shards[-1]:02d}"
        assert dg.AssetKey("qualification_responses") in request.asset_selection
        assert changed.cursor != first.cursor
