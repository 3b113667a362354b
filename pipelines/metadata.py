"""Metadata a person reads on an asset page: table schemas, row counts, markdown previews."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import dagster as dg
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from models import Base

# Re-exported for the Dagster wiring; the escaping itself lives in pipelines.markdown (no Dagster).
from pipelines.markdown import markdown_table as markdown_table
from pipelines.markdown import markdown_text as markdown_text


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
