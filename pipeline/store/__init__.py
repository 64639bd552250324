"""The database: SQLAlchemy models and Alembic migrations that apply themselves."""

from __future__ import annotations

from pipeline.store.database import Database, open_database
from pipeline.store.models import (
    Audience,
    Base,
    EngagementEvent,
    Reader,
    ReaderInterest,
    ReaderNeed,
    SendLedgerEntry,
)

__all__ = [
    "Audience",
    "Base",
    "Database",
    "EngagementEvent",
    "Reader",
    "ReaderInterest",
    "ReaderNeed",
    "SendLedgerEntry",
    "open_database",
]
