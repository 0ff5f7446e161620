"""Timestamps in UTC, the one zone labvault stores, compares and writes into archives."""

from __future__ import annotations

from datetime import datetime, timezone


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def as_utc(value: datetime) -> datetime:
    """A timestamp in UTC; a naive one is taken to be UTC already (as SQLite stores them)."""
    return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)
