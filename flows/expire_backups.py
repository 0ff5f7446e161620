"""expire-backups: the scheduled clean-up of expired, stale and orphaned backups."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from prefect import flow

from tasks.lifecycle_steps import expire, report_expiry


@flow(name="expire-backups")
def expire_backups(stale_after_minutes: int | None = None) -> dict[str, Any]:
    """Delete backups past their expiry date, turn stale In Progress backups into Error and
    remove orphaned partial archives. Running it twice in a row does nothing the second time.

    Args:
        stale_after_minutes: Minutes without progress before a running backup is reaped;
            default LABVAULT_STALE_AFTER_MINUTES.
    """
    report = expire(stale_after_minutes)
    report_expiry(report)
    return asdict(report)
