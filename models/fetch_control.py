"""Bookkeeping that keeps overlapping fetch runs from spending twice: claims and the day's budget.

Not analytics data: these rows coordinate processes (a nightly and a UI backfill of the same
shards) through the database they already share.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import Date, ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, BigId


class FetchClaim(Base):
    """A company being fetched by one run, until `expires_at` (a lease: a run that dies leaves
    a claim that expires instead of blocking the company)."""

    __tablename__ = "fetch_claims"

    company_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("companies.id", ondelete="CASCADE"), primary_key=True
    )
    run_id: Mapped[str] = mapped_column(String(64))
    expires_at: Mapped[dt.datetime]


class ApiBudgetDay(Base):
    """HTTP attempts reserved against `JUHE_DAILY_BUDGET` on one Asia/Shanghai day, by every
    process: a request reserves a unit atomically before it is sent."""

    __tablename__ = "api_budget_days"

    day: Mapped[dt.date] = mapped_column(Date, primary_key=True)
    calls: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
