"""Database fixtures: every test gets a migrated, empty database on the backend under test.

`ZIZHI_TEST_DB` picks the backend: `sqlite` (default) or `postgresql`. PostgreSQL tests use one
database per xdist worker, migrated once and truncated between tests; `ZIZHI_TEST_PG_URL` names
the server (default: the local trust-auth server, database `test`, used only to create others).
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from models import Base
from pipelines.db import get_engine, upgrade

BACKEND = os.environ.get("ZIZHI_TEST_DB", "sqlite")
PG_ADMIN_URL = os.environ.get("ZIZHI_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")


def is_postgres() -> bool:
    return BACKEND == "postgresql"


def _pg_url(database: str) -> str:
    return sa.make_url(PG_ADMIN_URL).set(database=database).render_as_string(hide_password=False)


def create_pg_database(prefix: str = "zizhi_test") -> str:
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(
        sa.make_url(PG_ADMIN_URL).set(drivername="postgresql+psycopg"), isolation_level="AUTOCOMMIT"
    )
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return _pg_url(name)


def drop_pg_database(url: str) -> None:
    name = sa.make_url(url).database
    get_engine(url).dispose()
    admin = sa.create_engine(
        sa.make_url(PG_ADMIN_URL).set(drivername="postgresql+psycopg"), isolation_level="AUTOCOMMIT"
    )
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture(scope="session")
def migrated_template(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A database at the head revision, made once per worker."""
    if is_postgres():
        url = create_pg_database()
        upgrade(url)
        yield url
        drop_pg_database(url)
    else:
        path = tmp_path_factory.mktemp("template") / "template.sqlite"
        upgrade(f"sqlite:///{path}")
        get_engine(f"sqlite:///{path}").dispose()
        yield f"sqlite:///{path}"


def _truncate_all(url: str) -> None:
    engine = get_engine(url)
    with engine.begin() as conn:
        names = [t.name for t in Base.metadata.sorted_tables]
        extra = (
            conn.execute(
                sa.text(
                    "SELECT tablename FROM pg_tables WHERE schemaname = current_schema() "
                    "AND tablename LIKE 'ratelimit%'"
                )
            )
            .scalars()
            .all()
        )
        conn.execute(
            sa.text(
                "TRUNCATE "
                + ", ".join(f'"{n}"' for n in [*names, *extra])
                + " RESTART IDENTITY CASCADE"
            )
        )


@pytest.fixture
def database_url(
    migrated_template: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[str]:
    """An empty database at head; also exported as DATABASE_URL for code that reads settings."""
    if is_postgres():
        _truncate_all(migrated_template)
        url = migrated_template
    else:
        source = Path(sa.make_url(migrated_template).database or "")
        target = tmp_path / "zizhi.sqlite"
        shutil.copyfile(source, target)
        url = f"sqlite:///{target}"
    monkeypatch.setenv("DATABASE_URL", url)
    monkeypatch.setenv("ZIZHI_DATA_DIR", str(tmp_path / "data"))
    yield url
    if not is_postgres():
        get_engine(url).dispose()


@pytest.fixture
def engine(database_url: str) -> Engine:
    return get_engine(database_url)


@pytest.fixture
def empty_database_url(tmp_path: Path) -> Iterator[str]:
    """A database with no schema at all, for migration tests."""
    if is_postgres():
        url = create_pg_database("zizhi_empty")
        yield url
        drop_pg_database(url)
    else:
        yield f"sqlite:///{tmp_path / 'empty.sqlite'}"
