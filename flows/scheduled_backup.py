"""scheduled-backup: the recurring backup of one organization, retried when it ends in Error.

Each failed try leaves the backup in Error with its reason; after a pause the same backup (same
sid) is tried again. When the last try fails, every admin of the organization is emailed.
"""

import time
from typing import Any

from prefect import flow, get_run_logger
from prefect.runtime import flow_run as current_flow_run

from flows.build_backup import build_backup, record_failure
from flows.outcome import fails_with_reason
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
    parameter,
)
from labvault.backups import BackupRequest, render_backup_name
from labvault.errors import InvalidInputError, one_line
from labvault.utc import utcnow
from tasks.backup_steps import estimate, notify, record_attempt_failure, restart_backup, start_backup
from tasks.slots import backup_slots

NAME_TEMPLATE = "Scheduled backup {date}"


def backup_name(template: str) -> str:
    """The name this run's backup gets: the template at the run's scheduled time."""
    return render_backup_name(template, current_flow_run.scheduled_start_time or utcnow())


def scheduled_run_name() -> str:
    """`backup demo-lab: Nightly 2026-12-04`, so the runs list says what each run backs up."""
    parameters = current_flow_run.parameters
    template = parameters.get("name_template", NAME_TEMPLATE)
    try:
        name = backup_name(template)
    except InvalidInputError:  # the run itself refuses the template, in its own words
        name = template
    return f"backup {parameters.get('organization_sid')}: {name}"


def wait_between_tries(minutes: int) -> None:
    """The pause before the next try (the flow run stays Running, its worker waiting)."""
    time.sleep(minutes * 60)


@flow(name="scheduled-backup", flow_run_name=scheduled_run_name, on_failure=[record_failure],
      on_crashed=[record_failure])
@fails_with_reason
def scheduled_backup(
    organization_sid: OrganizationSid = ORGANIZATION,
    requested_by: Email = REQUESTED_BY,
    name_template: str = parameter(
        NAME_TEMPLATE, "Name template",
        "Name of each backup: {date} becomes the scheduled date (YYYY-MM-DD), {time} its time "
        "(HH:MM, UTC)."),
    description: Description = DESCRIPTION,
    retention_days: RetentionDays = RETENTION,
    tries: Tries = parameter(3, "Tries", "How often a failing backup is tried in all."),
    minutes_between_tries: Minutes = parameter(
        30, "Minutes between tries", "Pause before trying a failed backup again."),
) -> dict[str, Any]:
    """Back up one organization on a schedule, without approval, retrying what fails."""
    request = BackupRequest(organization_sid, backup_name(name_template), description, requested_by)
    quote = estimate(request)
    with backup_slots(organization_sid):  # held between tries too: no other backup slips in
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
            restart_backup(sid, requested_by, flow_run_id=current_flow_run.id)
    raise AssertionError("unreachable: the last try returns or raises")
