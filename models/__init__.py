"""SQLAlchemy models of zizhi's tables (the contract of DESIGN.md)."""

from models.base import Base, utcnow
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
    "ApiCall",
    "Base",
    "Company",
    "License",
    "LicenseChange",
    "LicenseName",
    "LicenseVersion",
    "RawResponse",
    "RosterReject",
    "utcnow",
]
