"""retry-backup: make a backup that ended in Error again, under the same sid."""

from typing import Any

from prefect import flow
from prefect.runtime import flow_run as current_flow_run

from flows.build_backup import build_backup, record_failure
from flows.parameters import BACKUP, BackupSid
from tasks.backup_steps import restart_backup


@flow(name="retry-backup", on_failure=[record_failure], on_crashed=[record_failure])
def retry_backup(backup_sid: BackupSid = BACKUP) -> dict[str, Any]:
    """Re-run a failed backup: same sid, error cleared, a fresh archive and expiry on success."""
    sid = restart_backup(backup_sid, flow_run_id=current_flow_run.id)
    return build_backup(sid)
