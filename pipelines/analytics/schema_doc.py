"""Generate docs/schema.md, the data dictionary, from the models and the migrated views.

    python -m pipelines.analytics.schema_doc           # rewrite docs/schema.md
    python -m pipelines.analytics.schema_doc --check   # exit 1 when docs/schema.md is stale

Tables come from `models.Base.metadata` (types as PostgreSQL and SQLite name them, nullability,
keys, defaults, checks, indexes). A column's description is its `comment=` or `doc=` when the
model gives one, else its entry in `descriptions.COLUMN_DOCS`. Views are reflected from an in-memory
SQLite database migrated to head, so the page lists the columns the views really have.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path

import sqlalchemy as sa
from alembic import command
from sqlalchemy.dialects import postgresql, sqlite

from models import Base
from pipelines.analytics.descriptions import COLUMN_DOCS, INTRO, VIEW_DOCS
from pipelines.analytics.views import QUERIES_DIR, example_query_names
from pipelines.db import PROJECT_ROOT, alembic_config

SCHEMA_DOC = PROJECT_ROOT / "docs" / "schema.md"
REGENERATE = ".venv/bin/python -m pipelines.analytics.schema_doc"
TABLE_ORDER = (
    "companies",
    "licenses",
    "license_names",
    "license_versions",
    "license_changes",
    "raw_responses",
    "api_calls",
    "roster_rejects",
    "fetch_claims",
    "api_budget_days",
)


def render(view_columns: dict[str, list[str]]) -> str:
    """The whole page; `view_columns` maps each view to its columns, as reflected."""
    lines = [*INTRO, "", "## Tables", ""]
    for table in _tables():
        lines += _table_section(table)
    lines += [
        "## Views",
        "",
        "Created by migration 0002 (`migrations/versions/2026_11_28_0002_analytics_views.py`).",
        "",
    ]
    for view in _ordered(view_columns, tuple(VIEW_DOCS)):
        lines += _view_section(view, view_columns[view])
    lines += _queries_section()
    return "\n".join(lines).rstrip() + "\n"


def reflect_views() -> dict[str, list[str]]:
    """Columns of every view of a fresh in-memory SQLite database migrated to head."""
    engine = sa.create_engine("sqlite://")
    try:
        with engine.connect() as conn:
            config = alembic_config("sqlite://")
            config.attributes["connection"] = conn
            command.upgrade(config, "head")
            inspector = sa.inspect(conn)
            return {
                view: [c["name"] for c in inspector.get_columns(view)]
                for view in inspector.get_view_names()
            }
    finally:
        engine.dispose()


def undocumented(view_columns: dict[str, list[str]]) -> list[str]:
    """`table.column` of every table or view column that has no description."""
    missing = [f"{t.name}.{c.name}" for t in _tables() for c in t.columns if not _describe(c)]
    for view, columns in view_columns.items():
        described = VIEW_DOCS.get(view, ("", {}))[1]
        missing += [f"{view}.{column}" for column in columns if column not in described]
    return missing


def _tables() -> list[sa.Table]:
    tables = Base.metadata.tables
    return [tables[name] for name in _ordered(tables, TABLE_ORDER)]


def _ordered(names: Iterable[str], preferred: Sequence[str]) -> list[str]:
    names = set(names)
    return [n for n in preferred if n in names] + sorted(names - set(preferred))


def _table_docstring(table: sa.Table) -> str:
    for mapper in Base.registry.mappers:
        if mapper.local_table is table and mapper.class_.__doc__:
            return " ".join(mapper.class_.__doc__.split())
    return ""


def _table_section(table: sa.Table) -> list[str]:
    lines = [f"### `{table.name}`", "", _table_docstring(table), ""]
    lines += _markdown_table(
        ("Column", "PostgreSQL", "SQLite", "Null", "Key", "Default", "Description"),
        [
            (
                f"`{c.name}`",
                _type(c, postgresql.dialect()),
                _type(c, sqlite.dialect()),
                "yes" if c.nullable else "no",
                _keys(c),
                _default(c),
                _describe(c),
            )
            for c in table.columns
        ],
    )
    lines.append("")
    lines += [f"- {line}" for line in _constraints(table)]
    return [*lines, ""] if lines[-1] != "" else lines


def _view_section(view: str, columns: list[str]) -> list[str]:
    summary, described = VIEW_DOCS.get(view, ("(undocumented)", {}))
    rows = [(f"`{c}`", described.get(c, "")) for c in columns]
    return [f"### `{view}`", "", summary, "", *_markdown_table(("Column", "Description"), rows), ""]


def _queries_section() -> list[str]:
    lines = [
        "## Example queries",
        "",
        "In `pipelines/analytics/queries/`, with named parameters (`:since`). From Python, "
        "`pipelines.analytics.views.example_query(name)` binds them with the right types. In "
        "psql: `\\set since '''2026-11-21 00:00+08'''`. In the sqlite3 shell: "
        "`.param set :since '2026-11-20 16:00:00.000000'` (UTC, in the stored text format).",
        "",
    ]
    for name in example_query_names():
        lines.append(f"- `{name}.sql`: {_query_summary(QUERIES_DIR / f'{name}.sql')}")
    return [*lines, ""]


def _query_summary(path: Path) -> str:
    """The leading comment of a query file, up to its `-- Parameters` block."""
    summary = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.startswith("--") or line.startswith("-- Parameters"):
            break
        summary.append(line.removeprefix("--").strip())
    return " ".join(summary)


def _type(column: sa.Column[object], dialect: sa.Dialect) -> str:
    return f"`{column.type.compile(dialect=dialect)}`"


def _keys(column: sa.Column[object]) -> str:
    keys = ["PK"] if column.primary_key else []
    if column.unique or any(
        isinstance(c, sa.UniqueConstraint) and list(c.columns) == [column]
        for c in column.table.constraints
    ):
        keys.append("unique")
    for fk in column.foreign_keys:
        on_delete = f" ({fk.ondelete.lower()})" if fk.ondelete else ""
        keys.append(f"→ `{fk.target_fullname}`{on_delete}")
    return ", ".join(keys)


def _default(column: sa.Column[object]) -> str:
    if isinstance(column.server_default, sa.DefaultClause):
        arg = column.server_default.arg
        return f"`{arg.text if isinstance(arg, sa.TextClause) else arg}`"
    if column.default is not None:
        return "set by zizhi"
    return ""


def _describe(column: sa.Column[object]) -> str:
    return (
        column.comment or column.doc or COLUMN_DOCS.get(column.table.name, {}).get(column.name, "")
    )


def _constraints(table: sa.Table) -> list[str]:
    lines = []
    for constraint in sorted(table.constraints, key=lambda c: str(c.name)):
        if isinstance(constraint, sa.UniqueConstraint) and len(constraint.columns) > 1:
            columns = ", ".join(c.name for c in constraint.columns)
            lines.append(f"Unique together: ({columns})")
        elif isinstance(constraint, sa.CheckConstraint):
            lines.append(f"Check: `{constraint.sqltext}`")
    for index in sorted(table.indexes, key=lambda i: str(i.name)):
        columns = ", ".join(c.name for c in index.columns)
        where = index.dialect_options["postgresql"].get("where")
        partial = f" where `{where}`" if where is not None else ""
        unique = "unique " if index.unique else ""
        lines.append(f"Index `{index.name}`: {unique}({columns}){partial}")
    return lines


def _markdown_table(headers: Sequence[str], rows: Iterable[Sequence[str]]) -> list[str]:
    def row(cells: Sequence[str]) -> str:
        return "| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |"

    return [row(headers), row(["---"] * len(headers)), *(row(r) for r in rows)]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Generate docs/schema.md (the data dictionary).")
    parser.add_argument(
        "--check",
        action="store_true",
        help="exit 1 when docs/schema.md differs from what would be generated",
    )
    args = parser.parse_args(argv)
    text = render(reflect_views())
    if args.check:
        current = SCHEMA_DOC.read_text(encoding="utf-8") if SCHEMA_DOC.exists() else ""
        if current != text:
            print(
                f"{SCHEMA_DOC} is out of date; regenerate it with `{REGENERATE}`.", file=sys.stderr
            )
            return 1
        return 0
    SCHEMA_DOC.parent.mkdir(parents=True, exist_ok=True)
    SCHEMA_DOC.write_text(text, encoding="utf-8")
    print(f"wrote {SCHEMA_DOC}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
