"""Markdown for people: text from a roster or the API escaped as it is written out.

Plain functions without Dagster, used by the report (analytics core) and by the metadata Dagster
shows (pipelines.metadata).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Any

_MARKDOWN_SYNTAX = re.compile(r"[\\`*_\[\]<>~&|]")
FORMULA_START = ("=", "+", "-", "@")


def markdown_text(value: object) -> str:
    """Text from a roster or the API (company names, file names, reasons quoting cells) for a
    markdown cell, escaped as it is written out: whitespace flattened, markdown syntax
    backslash-escaped (no link, image, HTML, emphasis or table break comes through), and a leading
    `= + - @` prefixed with `'` so that a table copied into a spreadsheet shows text, not a
    formula. The stored text is unchanged."""
    text = " ".join(str(value).split())
    if text.startswith(FORMULA_START):
        text = "'" + text
    return _MARKDOWN_SYNTAX.sub(r"\\\g<0>", text)


def markdown_table(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """A markdown table; every cell escaped with `markdown_text` (numbers are left as they are)."""

    def cell(value: Any) -> str:
        if value is None:
            return ""
        return str(value) if isinstance(value, int | float) else markdown_text(value)

    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)
