"""backup-all-organizations: one create-backup run per organization, spread over the workers.

Each run is started with `run_deployment`, so the runs go to whatever workers serve the
create-backup deployment's pool; this flow only starts them and waits for their outcome.
"""

from typing import Any

from prefect import flow
from prefect.runtime import flow_run as current_flow_run

from flows.outcome import fails_with_reason
from flows.parameters import DESCRIPTION, RETENTION, Description, RetentionDays, parameter
from labvault.backups import render_backup_name
from labvault.utc import utcnow
from tasks.fan_out import list_organizations, start_create_backup_runs, wait_for_runs


@flow(name="backup-all-organizations", flow_run_name="backup all organizations")
@fails_with_reason
def backup_all_organizations(
    deployment: str = parameter(
        "create-backup/create-backup", "Deployment",
        "The create-backup deployment each organization's run is started from "
        "(flow name/deployment name)."),
    name_template: str = parameter(
        "Backup {date}", "Name template",
        "Name of each backup: {date} becomes YYYY-MM-DD and {time} HH:MM (UTC)."),
    description: Description = DESCRIPTION,
    retention_days: RetentionDays = RETENTION,
    wait: bool = parameter(True, "Wait", "Wait for every run and fail if any fails."),
) -> dict[str, Any]:
    """Back up every organization that has an admin; the organization's first admin is the
    requester of its backup."""
    name = render_backup_name(name_template, current_flow_run.scheduled_start_time or utcnow())
    organizations = list_organizations()
    runs = start_create_backup_runs(deployment, organizations, name, description, retention_days,
                                    str(current_flow_run.id))
    return wait_for_runs(runs) if wait else runs
