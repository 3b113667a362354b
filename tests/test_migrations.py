"""Migrations: head → base → head works, the models agree with the migrated schema, and the
pipeline refuses a database that is not at head."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from models import Base
from pipelines.db import (
    SchemaNotCurrentError,
    alembic_config,
    current_revision,
    ensure_schema_current,
    get_engine,
    head_revision,
    upgrade,
)


def tables(url: str) -> set[str]:
    return set(sa.inspect(get_engine(url)).get_table_names()) - {"alembic_version"}


def test_upgrade_downgrade_upgrade_round_trip(empty_database_url: str) -> None:
    url = empty_database_url
    upgrade(url)
    assert tables(url) >= set(Base.metadata.tables)
    command.downgrade(alembic_config(url), "base")
    assert tables(url) == set()
    upgrade(url)
    assert current_revision(get_engine(url)) == head_revision()
    with get_engine(url).connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        assert compare_metadata(context, Base.metadata) == []


def test_pipeline_refuses_a_database_not_at_head(empty_database_url: str) -> None:
    engine = get_engine(empty_database_url)
    with pytest.raises(SchemaNotCurrentError, match="make migrate"):
        ensure_schema_current(engine)
    upgrade(empty_database_url)
    ensure_schema_current(engine)  # at head: no error
