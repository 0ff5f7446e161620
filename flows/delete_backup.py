"""delete-backup: remove one backup's archive and take it out of every listing."""

from typing import Any

from prefect import flow

from flows.outcome import fails_with_reason
from flows.parameters import BACKUP, BackupSid, Email, parameter
from tasks.lifecycle_steps import delete_backup as delete


@flow(name="delete-backup", flow_run_name="delete {backup_sid}")
@fails_with_reason
def delete_backup(
    backup_sid: BackupSid = BACKUP,
    requested_by: Email = parameter(..., "Requested by",
                                    "Email of an admin of the backup's organization."),
) -> dict[str, Any]:
    """Delete a backup (not one In Progress) on behalf of an admin of its organization."""
    return delete(backup_sid, requested_by)
