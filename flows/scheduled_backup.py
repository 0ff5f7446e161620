"""scheduled-backup: the recurring backup of one organization, retried when it ends in Error.

Each failed try leaves the backup in Error with its reason; after a pause the same backup (same
sid) is tried again. When the last try fails, every admin of the organization is emailed.
"""

import time
from typing import Any

from prefect import flow, get_run_logger
from prefect.runtime import flow_run as current_flow_run
from pydantic import Field

from flows.build_backup import build_backup, record_failure
from flows.parameters import (
    DESCRIPTION,
    ORGANIZATION,
    REQUESTED_BY,
    RETENTION,
    Description,
    Email,
    Minutes,
    OrganizationSid,
    RetentionDays,
    Tries,
)
from labvault.backups import BackupRequest, render_backup_name
from labvault.errors import one_line
from labvault.models import utcnow
from tasks.backup_steps import estimate, notify, record_attempt_failure, restart_backup, start_backup


def wait_between_tries(minutes: int) -> None:
    """The pause before the next try (the flow run stays Running, its worker waiting)."""
    time.sleep(minutes * 60)


@flow(name="scheduled-backup", on_failure=[record_failure], on_crashed=[record_failure])
def scheduled_backup(
    organization_sid: OrganizationSid = ORGANIZATION,
    requested_by: Email = REQUESTED_BY,
    name_template: str = Field(
        "Scheduled backup {date}", title="Name template",
        description="Name of each backup: {date} becomes the scheduled date (YYYY-MM-DD), "
                    "{time} its time (HH:MM, UTC).",
    ),
    description: Description = DESCRIPTION,
    retention_days: RetentionDays = RETENTION,
    tries: Tries = Field(3, title="Tries", description="How often a failing backup is tried in all."),
    minutes_between_tries: Minutes = Field(
        30, title="Minutes between tries", description="Pause before trying a failed backup again.",
    ),
) -> dict[str, Any]:
    """Back up one organization on a schedule, without approval, retrying what fails."""
    when = current_flow_run.scheduled_start_time or utcnow()
    request = BackupRequest(organization_sid, render_backup_name(name_template, when), description,
                            requested_by)
    quote = estimate(request)
    sid = start_backup(request, flow_run_id=current_flow_run.id, cost=quote.cost,
                       retention_days=retention_days)
    for attempt in range(1, tries + 1):
        try:
            return build_backup(sid)
        except Exception as exc:
            record_attempt_failure(sid, one_line(exc))
            if attempt == tries:
                notify(sid, to_admins=True)
                raise
        get_run_logger().warning("Backup %s: try %d of %d failed; trying again in %d minutes",
                                 sid, attempt, tries, minutes_between_tries)
        wait_between_tries(minutes_between_tries)
        restart_backup(sid, flow_run_id=current_flow_run.id)
    raise AssertionError("unreachable: the last try returns or raises")
