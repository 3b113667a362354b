"""Shared test helpers for the juhe fetch stage: companies in the database, ledger reads."""

from __future__ import annotations

import datetime as dt
import multiprocessing
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from models.tables import ApiCall, Company, RawResponse
from pipelines.juhe.due import DueCompany
from pipelines.shards import shard_of

NOW = dt.datetime(2025, 3, 1, 4, 0, tzinfo=dt.UTC)


def add_companies(engine: Engine, names: Iterable[str], **state: Any) -> list[DueCompany]:
    """Insert active companies (query = name) with an optional fetch state; as DueCompany."""
    rows = [{"name": n, "match_key": n, "query": n, "shard": shard_of(n), **state} for n in names]
    with engine.begin() as conn:
        conn.execute(sa.insert(Company), rows)
        found = conn.execute(
            sa.select(Company.id, Company.name, Company.query, Company.shard)
            .where(Company.name.in_([r["name"] for r in rows]))
            .order_by(Company.id)
        ).all()
    return [DueCompany(*row) for row in found]


def companies_by_name(engine: Engine) -> dict[str, Any]:
    with engine.connect() as conn:
        return {row.name: row for row in conn.execute(sa.select(Company))}


def api_calls(engine: Engine) -> list[Any]:
    with engine.connect() as conn:
        return conn.execute(sa.select(ApiCall).order_by(ApiCall.id)).all()


def raw_responses(engine: Engine) -> list[Any]:
    with engine.connect() as conn:
        return conn.execute(sa.select(RawResponse).order_by(RawResponse.id)).all()


def sandbox_companies(engine: Engine, sandbox: Any, n: int) -> list[DueCompany]:
    """The first `n` companies of the sandbox's dataset, as roster rows (query = name)."""
    return add_companies(engine, [c.name for c in sandbox.dataset.companies[:n]])


def _spin() -> None:
    while True:
        pass


@contextmanager
def cpu_hog(processes: int = 2) -> Iterator[None]:
    """Busy-loop processes beside the block, as on a loaded CI machine."""
    hogs = [multiprocessing.get_context("fork").Process(target=_spin) for _ in range(processes)]
    for hog in hogs:
        hog.start()
    try:
        yield
    finally:
        for hog in hogs:
            hog.kill()
            hog.join()
