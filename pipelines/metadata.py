"""Metadata a person reads on an asset page: table schemas, row counts, markdown previews."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import dagster as dg
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from models import Base


def column_schema(table_name: str) -> dg.TableSchema:
    table = Base.metadata.tables[table_name]
    return dg.TableSchema(
        columns=[
            dg.TableColumn(
                name=column.name,
                type=str(column.type.compile(dialect=sa.dialects.postgresql.dialect())),
                description=column.comment or None,
                constraints=dg.TableColumnConstraints(
                    nullable=bool(column.nullable), unique=bool(column.unique)
                ),
            )
            for column in table.columns
        ]
    )


def row_count(engine: Engine, table_name: str) -> int:
    table = Base.metadata.tables[table_name]
    with engine.connect() as conn:
        return int(conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one())


def table_definition_metadata(table_name: str) -> dict[str, Any]:
    """Column schema and table name: static, so they sit on the asset definition rather than
    being repeated in every partition's materialization event."""
    return {"dagster/column_schema": column_schema(table_name), "dagster/table_name": table_name}


def table_metadata(engine: Engine, table_name: str) -> dict[str, Any]:
    """The row count, under Dagster's standard key so the UI shows it."""
    return {"dagster/row_count": row_count(engine, table_name)}


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


def counts_markdown(title: str, counts: Mapping[str, int]) -> str:
    if not counts:
        return f"**{title}:** none"
    return markdown_table([title, "count"], sorted(counts.items(), key=lambda kv: -kv[1]))


def latest_metadata(
    context: dg.AssetCheckExecutionContext, asset_key: dg.AssetKey
) -> dict[str, Any]:
    """The metadata values of the asset's newest materialization, as plain Python values."""
    event = context.instance.get_latest_materialization_event(asset_key)
    materialization = event.asset_materialization if event else None
    if materialization is None:
        return {}
    return {key: getattr(value, "value", value) for key, value in materialization.metadata.items()}
