"""docs/schema.md is generated from the models and the migrated views, and kept current."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipelines.analytics import schema_doc
from pipelines.analytics.descriptions import VIEW_DOCS


@pytest.fixture(scope="module")
def view_columns() -> dict[str, list[str]]:
    return schema_doc.reflect_views()


def test_committed_dictionary_matches_the_generator(view_columns: dict[str, list[str]]) -> None:
    committed = schema_doc.SCHEMA_DOC.read_text(encoding="utf-8")
    assert committed == schema_doc.render(view_columns), (
        f"docs/schema.md is out of date: regenerate it with `{schema_doc.REGENERATE}`"
    )


def test_every_table_and_view_column_has_a_description(
    view_columns: dict[str, list[str]],
) -> None:
    assert schema_doc.undocumented(view_columns) == [], (
        "describe these columns in pipelines/analytics/descriptions.py (or with comment= in the "
        f"model), then run `{schema_doc.REGENERATE}`"
    )


def test_views_are_reflected_from_the_migrated_database(
    view_columns: dict[str, list[str]],
) -> None:
    assert set(view_columns) == set(VIEW_DOCS)
    assert view_columns["expiring_licenses"] == view_columns["current_licenses"]
    assert "days_to_expiry" in view_columns["current_licenses"]


def test_check_mode_names_the_command_when_the_file_drifted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    stale = tmp_path / "schema.md"
    stale.write_text("# an old dictionary\n", encoding="utf-8")
    monkeypatch.setattr(schema_doc, "SCHEMA_DOC", stale)

    assert schema_doc.main(["--check"]) == 1
    assert schema_doc.REGENERATE in capsys.readouterr().err

    assert schema_doc.main([]) == 0
    assert schema_doc.main(["--check"]) == 0
    assert "## Views" in stale.read_text(encoding="utf-8")
