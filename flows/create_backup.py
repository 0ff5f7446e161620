"""create-backup: one organization's versions and files into one downloadable zip."""

from __future__ import annotations

from typing import Any

from prefect import flow, get_run_logger
from prefect.runtime import flow_run as current_flow_run

from labvault import backups
from labvault.backups import BackupDetails
from labvault.database import session_factory
from labvault.errors import one_line
from labvault.notification import LogNotifier, backup_notice
from labvault.settings import get_settings
from tasks.backup_steps import (
    copy_files,
    finish_backup,
    notify,
    open_archive,
    seal_archive,
    snapshot_versions,
    start_backup,
)


def failure_reason(state: Any) -> str:
    """One line saying why the run failed: the exception when Prefect kept it, else its message."""
    try:
        result = state.result(raise_on_failure=False)
    except Exception:  # the result may be unreadable (e.g. a crash before any result existed)
        result = None
    if isinstance(result, BaseException):
        return one_line(result)
    return one_line(RuntimeError(state.message or state.name))


def record_failure(flow: Any, flow_run: Any, state: Any) -> None:
    """Failure and crash hook: the run's backup (if it got one) goes to Error with the reason."""
    logger = get_run_logger()
    with session_factory(get_settings().database_url)() as session:
        backup = backups.backup_for_flow_run(session, str(flow_run.id))
        if backup is None or not backups.fail_backup(session, backup.sid, failure_reason(state)):
            return
        session.refresh(backup)
        logger.error("Backup %s failed: %s", backup.sid, backup.error)
        LogNotifier(logger).send(backup_notice(BackupDetails.of(backup)))


@flow(name="create-backup", on_failure=[record_failure], on_crashed=[record_failure])
def create_backup(organization_sid: str, name: str, requested_by: str,
                  description: str = "") -> dict[str, Any]:
    """Back up every record version and uploaded file of one organization into one zip.

    Args:
        organization_sid: The organization to back up.
        name: A short name for the backup, shown in listings.
        requested_by: Email of an admin of the organization; the notice goes there.
        description: Optional longer text to remember the backup by.
    """
    sid = start_backup(organization_sid, name, description, requested_by,
                       flow_run_id=current_flow_run.id)
    with open_archive(sid) as archive:
        snapshot_versions(sid, archive)
        copy_files(sid, archive)
        sealed = seal_archive(sid, archive)
    details = finish_backup(sid, sealed)
    notify(sid)
    return details
