"""The company_roster asset: the roster is ROSTER_PATH only (a run's config cannot name another
file, nor read a secret into an error), its caps come from the settings, its rejects preview is
escaped."""

from __future__ import annotations

import itertools
import os
from pathlib import Path
from typing import Any

import dagster as dg
import pytest
from markdown_it import MarkdownIt
from sqlalchemy.engine import Engine

from pipelines.definitions import defs
from pipelines.metadata import markdown_text
from pipelines.partitions import range_tags
from pipelines.resources import DatabaseResource
from pipelines.roster.assets import company_roster
from pipelines.roster.reader import RosterLimits
from pipelines.settings import Settings, SettingsError
from tests.dagster.helpers import counts
from tests.roster import HEADER, write_csv

LIMIT_VARIABLES = {
    "ZIZHI_ROSTER_MAX_ROWS": "max_rows",
    "ZIZHI_ROSTER_MAX_COLUMNS": "max_columns",
    "ZIZHI_ROSTER_MAX_LINE_BYTES": "max_line_bytes",
}


@pytest.mark.parametrize("variable", list(LIMIT_VARIABLES))
@pytest.mark.parametrize(
    ("value", "problem"),
    [("many", "is not a number"), ("0", "must be at least 1"), ("2.5", "must be a whole number")],
)
def test_a_bad_cap_is_refused_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, problem: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(SettingsError, match=f"^{variable}='{value}' {problem}"):
        Settings.from_env()


def test_caps_come_from_the_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    for variable in LIMIT_VARIABLES:
        monkeypatch.delenv(variable, raising=False)
    assert RosterLimits.from_settings(Settings.from_env()) == RosterLimits()
    for number, variable in enumerate(LIMIT_VARIABLES, start=7):
        monkeypatch.setenv(variable, f" {number} ")
    limits = RosterLimits.from_settings(Settings.from_env())
    assert (limits.max_rows, limits.max_columns, limits.max_line_bytes) == (7, 8, 9)


def table_cells(markdown: str) -> list[tuple[str, set[str]]]:
    """Each table cell as a CommonMark renderer (with GFM tables) reads it: its visible text and
    the kinds of inline tokens in it, {"text"} when nothing in it became markup."""
    tokens = MarkdownIt("commonmark").enable(["table", "strikethrough"]).parse(markdown)
    return [
        (
            "".join(child.content for child in token.children or [] if child.type == "text"),
            {child.type for child in token.children or []},
        )
        for previous, token in itertools.pairwise(tokens)
        if token.type == "inline" and previous.type == "td_open"
    ]


def materialize() -> dict[str, Any]:
    result = dg.materialize([company_roster], resources={"database": DatabaseResource()})
    (materialization,) = result.asset_materializations_for_node("company_roster")
    return {k: getattr(v, "value", v) for k, v in materialization.metadata.items()}


USCC_A, USCC_B = "91110000600037341L", "91350100M000100Y43"
KEY = "zk-ROSTER-5f0c2e9a7b13d846"


def run_messages(instance: dg.DagsterInstance) -> str:
    """Every event and log message of every run the instance holds, errors and causes included."""
    said = []
    for run in instance.get_runs():
        for entry in instance.all_logs(run.run_id):
            said.append(entry.user_message)
            error = getattr(
                entry.dagster_event and entry.dagster_event.event_specific_data, "error", None
            )
            while error is not None:
                said.append(error.to_string())
                error = error.cause
    return "\n".join(said)


@pytest.fixture
def rosters(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """ROSTER_PATH names a one-company roster; returns another readable roster file."""
    monkeypatch.setenv("JUHE_API_KEY", KEY)
    monkeypatch.setenv(
        "ROSTER_PATH", str(write_csv(tmp_path / "roster.csv", [HEADER, ["甲公司", USCC_A]]))
    )
    return write_csv(tmp_path / "elsewhere.csv", [HEADER, ["乙公司", USCC_B]])


def launch_with(job: str, path: object) -> Exception:
    """Launch `job` with a roster path in its config, as the Launchpad or GraphQL could."""
    run_config = {"ops": {"company_roster": {"config": {"path": path}}}}
    with dg.instance_for_test() as instance:
        with pytest.raises(dg.DagsterInvalidConfigError) as refused:
            if job == "materialize":
                dg.materialize(
                    [company_roster],
                    resources={"database": DatabaseResource()},
                    run_config=run_config,
                    instance=instance,
                    raise_on_error=False,
                )
            else:
                defs.resolve_job_def(job).execute_in_process(
                    run_config=run_config,
                    instance=instance,
                    tags=range_tags(),
                    raise_on_error=False,
                )
        assert run_messages(instance) == ""  # refused before a run, an event or a log existed
        assert not instance.get_runs()
    return refused.value


@pytest.mark.parametrize("job", ["materialize", "refresh_job"])
@pytest.mark.parametrize("asked", ["the key", "another file"])
def test_a_run_config_cannot_choose_the_roster(
    engine: Engine, rosters: Path, job: str, asked: str
) -> None:
    """`{env: JUHE_API_KEY}` once put the key into "Roster <key> could not be read" in the event
    log; another path let any UI user load any readable file and deactivate every company
    missing from it."""
    path = {"env": "JUHE_API_KEY"} if asked == "the key" else str(rosters)
    refused = launch_with(job, path)
    assert '"path"' in str(refused)
    assert KEY not in str(refused) and str(rosters) not in str(refused)
    assert counts(engine, "companies")["companies"] == 0  # nothing was read


def test_the_roster_is_read_from_roster_path(engine: Engine, rosters: Path) -> None:
    metadata = materialize()
    assert metadata["accepted"] == 1
    assert metadata["roster_path"] == os.environ["ROSTER_PATH"]


def test_an_unreadable_roster_fails_naming_roster_path_not_its_value(
    engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    missing = tmp_path / KEY / "roster.csv"
    monkeypatch.setenv("ROSTER_PATH", str(missing))
    with dg.instance_for_test() as instance:
        result = dg.materialize(
            [company_roster],
            resources={"database": DatabaseResource()},
            instance=instance,
            raise_on_error=False,
        )
        assert not result.success
        said = run_messages(instance)
    assert "The roster (ROSTER_PATH) could not be read: file not found" in said
    assert KEY not in said


def test_rejects_preview_shows_hostile_text_as_text(
    engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """File names and cell values quoted in reasons reach the UI's markdown escaped: no link,
    image, HTML or emphasis, and a formula-like start behind a quote."""
    monkeypatch.setenv("ZIZHI_ROSTER_MAX_ROWS", "4")
    folder = tmp_path / "roster"
    folder.mkdir()
    link = "[点击](http://evil.example)建设有限公司"
    write_csv(
        folder / "a.csv",
        [
            HEADER,
            [link, USCC_A],
            [link, USCC_B],  # a conflict: the reason quotes the name
            ["甲公司", "<img src=x onerror=alert(1)>"],  # a bad USCC: the reason quotes it
            ["乙公司"],
            ["丙公司"],  # the fifth row with data: over ZIZHI_ROSTER_MAX_ROWS=4
        ],
    )
    write_csv(folder / "=HYPERLINK(1)**b**.csv", [HEADER, ["丁公司", "12345"]])

    monkeypatch.setenv("ROSTER_PATH", str(folder))
    metadata = materialize()

    assert metadata["complete"] is False
    assert metadata["roster_limits"]["max_rows"] == 4
    cells = table_cells(metadata["rejects_preview"])
    assert all(kinds <= {"text"} for _, kinds in cells), cells
    sources, rows, reasons = ([text for text, _ in cells][column::3] for column in range(3))
    assert sources == ["'=HYPERLINK(1)**b**.csv", "a.csv", "a.csv", "a.csv", "a.csv"]
    assert rows == ["2", "", "2", "3", "4"]
    assert reasons[0] == "统一社会信用代码 12345 has 5 characters; it must have 18"
    assert reasons[1].startswith("a.csv: row 5: the roster has more than 4 rows with data")
    assert f"name {link} appears with two different 统一社会信用代码" in reasons[2]
    assert reasons[4].startswith("统一社会信用代码 <img src=x onerror=alert(1)> has")


@pytest.mark.parametrize(
    ("text", "escaped"),
    [
        ("=1+1", "'=1+1"),
        ("  +86\t建设", "'+86 建设"),
        ("-", "'-"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("甲 = 乙", "甲 = 乙"),
        ("[a](http://e) ![i](x) <b> *e* _u_ `c` ~s~ & \\", None),
    ],
)
def test_markdown_text(text: str, escaped: str | None) -> None:
    if escaped is None:
        escaped = r"\[a\](http://e) !\[i\](x) \<b\> \*e\* \_u\_ \`c\` \~s\~ \& \\"
    assert markdown_text(text) == escaped
