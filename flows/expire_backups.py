"""expire-backups: the scheduled clean-up of expired, stale and orphaned backups."""

from dataclasses import asdict
from typing import Annotated, Any

from prefect import flow
from pydantic import Field

from flows.outcome import fails_with_reason
from flows.parameters import parameter
from tasks.lifecycle_steps import expire, report_expiry


@flow(name="expire-backups", flow_run_name="expire")
@fails_with_reason
def expire_backups(
    stale_after_minutes: Annotated[int, Field(ge=0, le=10080)] = parameter(
        0, "Stale after (minutes)",
        "Minutes without progress before a running backup is reaped to Error; "
        "0: LABVAULT_STALE_AFTER_MINUTES."),
) -> dict[str, Any]:
    """Delete backups past their expiry date, turn stale In Progress backups into Error and
    remove orphaned partial archives. Running it twice in a row does nothing the second time."""
    report = expire(stale_after_minutes)
    report_expiry(report)
    return asdict(report)
