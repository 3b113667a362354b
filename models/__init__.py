"""SQLAlchemy models of zizhi's tables (the contract: docs/architecture.md#tables)."""

from models.base import Base, utcnow
from models.fetch_control import ApiBudgetDay, FetchClaim
from models.tables import (
    ApiCall,
    Company,
    License,
    LicenseChange,
    LicenseName,
    LicenseVersion,
    RawResponse,
    RosterReject,
)

__all__ = [
    "ApiBudgetDay",
    "ApiCall",
    "Base",
    "Company",
    "FetchClaim",
    "License",
    "LicenseChange",
    "LicenseName",
    "LicenseVersion",
    "RawResponse",
    "RosterReject",
    "utcnow",
]
