"""Engines, sessions and the schema-revision guard shared by every stage."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from pathlib import Path

import sqlalchemy as sa
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

PROJECT_ROOT = Path(__file__).resolve().parents[1]
MIGRATIONS_DIR = PROJECT_ROOT / "migrations"


OWNER_ONLY_UMASK = 0o077


def create_private_files() -> None:
    """From now on this process (and the processes it starts) creates files and folders that
    only their owner can read: umask 077. zizhi's files hold paid data and, in the limiter's file
    and DAGSTER_HOME, the traces of every run; the SQLite database, its WAL, the limiter's file
    beside it and the report charts are all created after this."""
    os.umask(os.umask(OWNER_ONLY_UMASK) | OWNER_ONLY_UMASK)


def private_folder(path: Path) -> Path:
    """`path` as a folder, created 0700 (with any missing parents) if it does not exist yet."""
    create_private_files()
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    return path


class SchemaNotCurrentError(RuntimeError):
    """The database is not at the head migration; the message says how to fix it."""


def _sqlite_pragmas(dbapi_connection, _record) -> None:  # type: ignore[no-untyped-def]
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


@cache
def get_engine(url: str) -> Engine:
    """One engine per URL and process; SQLite gets WAL, foreign keys and a busy timeout."""
    url_obj = sa.make_url(url)
    if url_obj.get_backend_name() == "sqlite":
        if url_obj.database and url_obj.database != ":memory:":
            private_folder(Path(url_obj.database).parent)
        engine = sa.create_engine(url_obj, connect_args={"timeout": 30})
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    if url_obj.drivername in ("postgresql", "postgres"):
        url_obj = url_obj.set(drivername="postgresql+psycopg")
    return sa.create_engine(url_obj, pool_pre_ping=True)


@contextmanager
def session_scope(engine: Engine) -> Iterator[Session]:
    """A session that commits on success and rolls back on any error."""
    with Session(engine, expire_on_commit=False) as session, session.begin():
        yield session


def alembic_config(url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["database_url"] = url
    return config


@cache
def head_revision() -> str | None:
    """The newest migration this code ships (read once a process: loading alembic's scripts
    took 5-8 ms, and every step checks the schema)."""
    return ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def upgrade(url: str, revision: str = "head") -> None:
    from alembic import command

    command.upgrade(alembic_config(url), revision)


def ensure_schema_current(engine: Engine) -> None:
    """Refuse to run against a database whose schema is not at the head revision."""
    current, head = current_revision(engine), head_revision()
    if current != head:
        where = engine.url.render_as_string(hide_password=True)
        raise SchemaNotCurrentError(
            f"database {where} is at migration {current or 'none (empty database)'}, "
            f"but this zizhi needs {head}. Run `make migrate` (or `alembic upgrade head` with "
            "the same DATABASE_URL) and try again."
        )
