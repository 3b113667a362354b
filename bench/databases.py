"""Fresh benchmark databases at the head revision, on either backend."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import sqlalchemy as sa

from pipelines.db import get_engine, upgrade


def fresh(backend: str, workdir: Path, name: str) -> tuple[str, Callable[[], None]]:
    """A new database at the head revision (a SQLite file in `workdir`, or a new PostgreSQL
    database), and how to get rid of it."""
    if backend == "sqlite":
        url = f"sqlite:///{workdir / name}.sqlite"
        upgrade(url)
        return url, lambda: get_engine(url).dispose()
    from tests.fixtures_db import create_pg_database, drop_pg_database

    url = create_pg_database(f"zizhi_bench_{name}")
    upgrade(url)
    return url, lambda: drop_pg_database(url)


def pg_conninfo(url: str) -> str:
    """A SQLAlchemy PostgreSQL URL as psycopg's connection string."""
    return sa.make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
