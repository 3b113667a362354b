"""Migration 0002 creates the analytics views, drops them on downgrade, and leaves the models
and the migrated schema in agreement (autogenerate sees no difference)."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from models import Base
from pipelines.db import alembic_config, get_engine, upgrade

VIEWS = {
    "current_licenses",
    "expiring_licenses",
    "license_change_log",
    "company_qualification_summary",
    "fetch_health",
}


def view_names(url: str) -> set[str]:
    return set(sa.inspect(get_engine(url)).get_view_names())


def test_upgrade_creates_the_views_and_downgrade_drops_them(empty_database_url: str) -> None:
    url = empty_database_url
    upgrade(url, "0002")
    assert view_names(url) == VIEWS

    command.downgrade(alembic_config(url), "0001")
    assert view_names(url) == set()
    assert {"licenses", "license_changes"} <= set(sa.inspect(get_engine(url)).get_table_names())

    upgrade(url, "0002")
    assert view_names(url) == VIEWS
    with get_engine(url).connect() as conn:
        for view in VIEWS:
            assert conn.execute(sa.text(f"SELECT COUNT(*) FROM {view}")).scalar_one() == 0


def test_autogenerate_reports_no_difference_after_the_views(empty_database_url: str) -> None:
    upgrade(empty_database_url)
    with get_engine(empty_database_url).connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        assert compare_metadata(context, Base.metadata) == []
