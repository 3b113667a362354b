"""The contract tables (docs/architecture.md#tables). Downstream SQL depends on these names."""

from __future__ import annotations

import datetime as dt
from typing import Any, Optional

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    Date,
    ForeignKey,
    Index,
    Integer,
    SmallInteger,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, BigId, TimestampMixin, utcnow

FETCH_STATUSES = ("pending", "ok", "not_found", "invalid", "failed")
CHANGE_TYPES = ("added", "updated", "removed", "restored")
CALL_OUTCOMES = (
    "ok",
    "not_found",
    "invalid",
    "transient",
    "throttled",
    "quota",
    "maintenance",
    "fatal",
)


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


class Company(TimestampMixin, Base):
    """One company of the roster, its query and its fetch state."""

    __tablename__ = "companies"
    __table_args__ = (
        CheckConstraint(_in("fetch_status", FETCH_STATUSES), name="fetch_status"),
        CheckConstraint("shard >= 0 AND shard < 32", name="shard"),
        Index("ix_companies_shard_active", "shard", "active"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    name: Mapped[str] = mapped_column(Text)
    uscc: Mapped[Optional[str]] = mapped_column(String(18), unique=True)
    reg_no: Mapped[Optional[str]] = mapped_column(String(15))
    match_key: Mapped[str] = mapped_column(Text, unique=True)
    query: Mapped[str] = mapped_column(Text)
    shard: Mapped[int] = mapped_column(SmallInteger)
    active: Mapped[bool] = mapped_column(Boolean, default=True, server_default=text("true"))
    roster_source: Mapped[Optional[str]] = mapped_column(Text)
    fetch_status: Mapped[str] = mapped_column(
        String(16), default="pending", server_default="pending"
    )
    last_error_code: Mapped[Optional[int]] = mapped_column(Integer)
    last_attempt_at: Mapped[Optional[dt.datetime]]
    last_fetched_at: Mapped[Optional[dt.datetime]]
    # Consecutive runs that ended in failure for this company; drives the retry backoff.
    consecutive_failures: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    license_count: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # fetched_at of the newest response applied to licenses; older replays infer no removals.
    last_response_at: Mapped[Optional[dt.datetime]]
    # sha256 fold of PARSER_VERSION and the body_sha256 of every raw response applied, in
    # (fetched_at, id) order; a replay skips the company while it matches (normalize/fingerprint).
    normalized_fingerprint: Mapped[Optional[str]] = mapped_column(String(64))
    # fold([body_sha256]) of the newest raw response while the current licences are exactly its
    # items (NULL otherwise): a later identical answer only moves presence times, so it is
    # applied without parsing (normalize/settled).
    settled_fingerprint: Mapped[Optional[str]] = mapped_column(String(64))


class License(Base):
    """The current state of one certificate, keyed by (company_id, category, lic_no)."""

    __tablename__ = "licenses"
    __table_args__ = (
        UniqueConstraint("company_id", "category", "lic_no"),
        Index("ix_licenses_validity_end", "validity_end"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    company_id: Mapped[int] = mapped_column(ForeignKey("companies.id", ondelete="CASCADE"))
    category: Mapped[str] = mapped_column(Text)
    lic_no: Mapped[str] = mapped_column(Text)
    issue_org: Mapped[Optional[str]] = mapped_column(Text)
    lic_scope: Mapped[Optional[str]] = mapped_column(Text)
    url: Mapped[Optional[str]] = mapped_column(Text)
    validity_start: Mapped[Optional[dt.date]] = mapped_column(Date)
    validity_end: Mapped[Optional[dt.date]] = mapped_column(Date)
    # True for 长期/永久: validity_end is null because the licence never expires.
    validity_open_ended: Mapped[bool] = mapped_column(
        Boolean, default=False, server_default=text("false")
    )
    source_created_time: Mapped[Optional[dt.datetime]]
    source_updated_time: Mapped[Optional[dt.datetime]]
    content_hash: Mapped[str] = mapped_column(String(64))
    first_seen_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    last_seen_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    removed_at: Mapped[Optional[dt.datetime]]


class LicenseName(Base):
    """One entry of a licence's `lic_name` array, with its grade."""

    __tablename__ = "license_names"
    __table_args__ = (UniqueConstraint("license_id", "name"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    license_id: Mapped[int] = mapped_column(ForeignKey("licenses.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(Text)
    position: Mapped[int] = mapped_column(Integer)
    grade: Mapped[Optional[str]] = mapped_column(String(8))


class LicenseVersion(Base):
    """SCD2 history: one row per distinct source version of a licence."""

    __tablename__ = "license_versions"
    __table_args__ = (
        UniqueConstraint("license_id", "valid_from"),
        Index(
            "ix_license_versions_open",
            "license_id",
            unique=True,
            sqlite_where=text("valid_to IS NULL"),
            postgresql_where=text("valid_to IS NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    license_id: Mapped[int] = mapped_column(ForeignKey("licenses.id", ondelete="CASCADE"))
    valid_from: Mapped[dt.datetime]
    valid_to: Mapped[Optional[dt.datetime]]
    content_hash: Mapped[str] = mapped_column(String(64))
    content: Mapped[dict[str, Any]]
    loaded_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    run_id: Mapped[Optional[str]] = mapped_column(String(64))


class LicenseChange(Base):
    """The change log: added, updated, removed, restored."""

    __tablename__ = "license_changes"
    __table_args__ = (
        CheckConstraint(_in("change_type", CHANGE_TYPES), name="change_type"),
        Index("ix_license_changes_detected_at", "detected_at"),
        Index("ix_license_changes_company_id", "company_id"),
        Index("ix_license_changes_license_id", "license_id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    license_id: Mapped[int] = mapped_column(ForeignKey("licenses.id", ondelete="CASCADE"))
    company_id: Mapped[int] = mapped_column(ForeignKey("companies.id", ondelete="CASCADE"))
    change_type: Mapped[str] = mapped_column(String(16))
    changed_fields: Mapped[Optional[list[Any]]]
    old_values: Mapped[Optional[dict[str, Any]]]
    new_values: Mapped[Optional[dict[str, Any]]]
    source_updated_time: Mapped[Optional[dt.datetime]]
    detected_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    run_id: Mapped[Optional[str]] = mapped_column(String(64))
    raw_response_id: Mapped[Optional[int]] = mapped_column(
        ForeignKey("raw_responses.id", ondelete="SET NULL")
    )


class ApiCall(Base):
    """The call ledger: one row per HTTP request to juhe, billable or not."""

    __tablename__ = "api_calls"
    __table_args__ = (
        CheckConstraint(_in("outcome", CALL_OUTCOMES), name="outcome"),
        Index("ix_api_calls_called_at", "called_at"),
        Index("ix_api_calls_run_id", "run_id"),
        Index("ix_api_calls_company_id", "company_id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    company_id: Mapped[Optional[int]] = mapped_column(
        ForeignKey("companies.id", ondelete="SET NULL")
    )
    called_at: Mapped[dt.datetime]
    attempt: Mapped[int] = mapped_column(Integer)
    http_status: Mapped[Optional[int]] = mapped_column(Integer)
    error_code: Mapped[Optional[int]] = mapped_column(Integer)
    outcome: Mapped[str] = mapped_column(String(16))
    detail: Mapped[Optional[str]] = mapped_column(Text)
    latency_ms: Mapped[Optional[int]] = mapped_column(Integer)
    billable: Mapped[bool] = mapped_column(Boolean, default=False, server_default=text("false"))
    run_id: Mapped[Optional[str]] = mapped_column(String(64))


class RawResponse(Base):
    """Every body the API returned (0 and 260204), append-only, before any parsing."""

    __tablename__ = "raw_responses"
    __table_args__ = (
        Index("ix_raw_responses_company_id_fetched_at", "company_id", "fetched_at"),
        Index(
            "ix_raw_responses_pending",
            "id",
            sqlite_where=text("normalized_at IS NULL"),
            postgresql_where=text("normalized_at IS NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    company_id: Mapped[int] = mapped_column(ForeignKey("companies.id", ondelete="CASCADE"))
    # The ledger row of the HTTP request that returned this body: one body per call.
    api_call_id: Mapped[Optional[int]] = mapped_column(
        ForeignKey("api_calls.id", ondelete="SET NULL"), unique=True
    )
    query: Mapped[str] = mapped_column(Text)
    fetched_at: Mapped[dt.datetime]
    http_status: Mapped[int] = mapped_column(Integer)
    error_code: Mapped[Optional[int]] = mapped_column(Integer)
    reason: Mapped[Optional[str]] = mapped_column(Text)
    sign: Mapped[Optional[str]] = mapped_column(Text)
    body: Mapped[str] = mapped_column(Text)
    body_sha256: Mapped[str] = mapped_column(String(64))
    run_id: Mapped[Optional[str]] = mapped_column(String(64))
    normalized_at: Mapped[Optional[dt.datetime]]


class RosterReject(Base):
    """A roster row that could not be used, and why, in words a person understands."""

    __tablename__ = "roster_rejects"
    __table_args__ = (UniqueConstraint("fingerprint"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    source: Mapped[str] = mapped_column(Text)
    row_number: Mapped[Optional[int]] = mapped_column(Integer)
    raw_row: Mapped[Optional[dict[str, Any]]]
    reason: Mapped[str] = mapped_column(Text)
    # sha256 of (source, row_number, raw_row, reason): re-reading a roster adds no duplicates.
    fingerprint: Mapped[str] = mapped_column(String(64))
    detected_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
