"""Markdown shown in Dagster's UI escapes text that came from a roster or the API."""

from __future__ import annotations

from pipelines.metadata import markdown_table


def test_every_text_cell_of_a_markdown_table_is_escaped() -> None:
    hostile = '=HYPERLINK("http://x") [click](http://evil) <img src=x> a|b'
    table = markdown_table(["company", "calls"], [(hostile, 3), (None, 0)])
    row = table.splitlines()[2]
    assert row.startswith("| '=HYPERLINK")  # a spreadsheet shows text, not a formula
    assert "\\[click\\](http://evil)" in row and "\\<img src=x\\>" in row
    assert "a\\|b" in row  # no extra column
    assert row.endswith("| 3 |") and table.splitlines()[3] == "|  | 0 |"
