"""The roster sensor fires when the roster changes, for the shards of new companies only."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import pytest

from models import utcnow
from pipelines.definitions import defs
from pipelines.partitions import RANGE_END_TAG, RANGE_START_TAG
from pipelines.resources import DatabaseResource
from pipelines.roster.identifiers import match_key
from pipelines.roster.store import store_roster
from pipelines.roster.validate import load_roster
from pipelines.shards import shard_key, shard_of
from tests.dagster.helpers import write_roster
from tests.roster import HEADER, write_csv, write_xlsx


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
        new_shards = sorted({shard_of(c.uscc) for c in companies[10:12]})
        assert request.tags[RANGE_START_TAG] == f"{new_shards[0]:02d}"
        assert request.tags[RANGE_END_TAG] == f"{new_shards[-1]:02d}"
        assert dg.AssetKey("qualification_responses") in request.asset_selection
        assert changed.cursor != first.cursor


def test_the_sensor_starts_stopped() -> None:
    """Dagster's convention: a sensor runs only once someone turns it on (UI toggle or
    `dagster sensor start roster_sensor`)."""
    sensor = defs.resolve_sensor_def("roster_sensor")
    assert sensor.default_status == dg.DefaultSensorStatus.STOPPED


def fires(result: dg.SensorResult | dg.SkipReason) -> bool:
    return bool(getattr(result, "run_requests", None))


def test_the_sensor_watches_the_files_the_reader_reads(
    engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A .tsv in the folder is a roster file; Excel's ~$ lock file and hidden files are not."""
    folder = tmp_path / "roster"
    folder.mkdir()
    write_csv(folder / "a.csv", [HEADER, ["甲公司"]])
    monkeypatch.setenv("ROSTER_PATH", str(folder))
    with dg.instance_for_test() as instance:
        first = evaluate(instance, None)
        assert fires(first)

        write_csv(folder / "~$a.xlsx", [HEADER, ["lock"]])  # Excel opened a.xlsx
        (folder / ".~lock.a.csv#").write_text("LibreOffice lock")
        (folder / "notes.md").write_text("not a roster")
        unchanged = evaluate(instance, first.cursor)
        assert not fires(unchanged) and "unchanged" in (unchanged.skip_message or "")

        write_csv(folder / "b.tsv", [HEADER, ["乙公司"]], delimiter="\t")
        changed = evaluate(instance, first.cursor)
        assert fires(changed)
        shards = changed.run_requests[0].tags
        assert shards[RANGE_START_TAG] <= shard_key(shard_of(match_key("乙公司")))
        assert shards[RANGE_END_TAG] >= shard_key(shard_of(match_key("乙公司")))


def test_the_sensor_watches_a_named_sheet(
    engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """ROSTER_PATH=file.xlsx#Sheet: the workbook is watched and the sheet's companies fetched."""
    path = write_xlsx(
        tmp_path / "roster.xlsx", {"说明": [["见第二页"]], "名单": [HEADER, ["甲公司"]]}
    )
    monkeypatch.setenv("ROSTER_PATH", f"{path}#名单")
    with dg.instance_for_test() as instance:
        first = evaluate(instance, None)
        assert fires(first)
        request = first.run_requests[0]
        assert dg.AssetKey("qualification_responses") in request.asset_selection
        shard = shard_key(shard_of(match_key("甲公司")))
        assert request.tags[RANGE_START_TAG] == request.tags[RANGE_END_TAG] == shard
        assert not fires(evaluate(instance, first.cursor))

        write_xlsx(path, {"说明": [["见第二页"]], "名单": [HEADER, ["甲公司"], ["乙公司"]]})
        assert fires(evaluate(instance, first.cursor))

        monkeypatch.setenv("ROSTER_PATH", f"{path}#旧名单")  # another sheet: another roster
        other = evaluate(instance, first.cursor)
        assert fires(other)  # the roster asset records the missing sheet as a reject
        assert other.run_requests[0].asset_selection == [dg.AssetKey("company_roster")]


def test_the_sensor_skips_a_roster_that_is_not_there(
    engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The skip reason (kept in the tick history the UI shows) names ROSTER_PATH and the problem,
    never repeats the configured path."""
    monkeypatch.setenv("ROSTER_PATH", str(tmp_path / "nowhere.csv"))
    with dg.instance_for_test() as instance:
        result = evaluate(instance, None)
        assert not fires(result)
        assert result.skip_message == "ROSTER_PATH: file not found"
        (tmp_path / "empty").mkdir()
        monkeypatch.setenv("ROSTER_PATH", str(tmp_path / "empty"))
        result = evaluate(instance, None)
        assert not fires(result)
        assert result.skip_message == "ROSTER_PATH: folder holds no .csv or .xlsx file"
