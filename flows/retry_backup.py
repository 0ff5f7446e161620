"""retry-backup: make a backup that ended in Error again, under the same sid."""

from typing import Any

from prefect import flow
from prefect.runtime import flow_run as current_flow_run

from flows.build_backup import build_backup, record_failure
from flows.outcome import fails_with_reason
from flows.parameters import BACKUP, REQUESTED_BY, BackupSid, Email
from tasks.backup_steps import restart_backup
from tasks.slots import backup_slots, organization_of


@flow(name="retry-backup", flow_run_name="retry {backup_sid}", on_failure=[record_failure],
      on_crashed=[record_failure])
@fails_with_reason
def retry_backup(backup_sid: BackupSid = BACKUP, requested_by: Email = REQUESTED_BY) -> dict[str, Any]:
    """Re-run a failed backup for an admin of its organization: same sid, error cleared, a fresh
    archive and expiry on success; the notice goes to that admin."""
    with backup_slots(organization_of(backup_sid)):
        sid = restart_backup(backup_sid, requested_by, flow_run_id=current_flow_run.id)
        return build_backup(sid)
