"""The part of the job that create-backup and retry-backup share: archive, finish, notify.

Also the failure hook both flows use: whatever fails after a backup row exists turns that row
into Error with a one-line reason; the archive writer has already removed its partial output.
"""

from __future__ import annotations

from typing import Any

from prefect import get_run_logger
from prefect.logging.loggers import flow_run_logger

from labvault.backups import fail_backup
from labvault.catalog import BackupDetails, backup_for_flow_run
from labvault.errors import LabvaultError, one_line
from labvault.notification import backup_notice
from tasks import context
from tasks.backup_steps import (
    copy_files,
    finish_backup,
    notify,
    open_archive,
    seal_archive,
    snapshot_versions,
    verify_written_archive,
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
    """Failure and crash hook: the run's backup (if it got one) goes to Error, and people are told.

    Runs outside the flow's context (a run can fail before its body starts), so it logs through
    the flow run's logger rather than `get_run_logger()`."""
    logger = flow_run_logger(flow_run, flow)
    settings = context.settings()
    with context.sessions()() as session:
        backup = backup_for_flow_run(session, str(flow_run.id))
        if backup is None or not fail_backup(session, backup.sid, failure_reason(state)):
            return
        session.refresh(backup)
        details = BackupDetails.of(backup, context.backups_storage())
    logger.error("Backup %s failed: %s", details.sid, details.error)
    try:
        context.notifier(logger).send(backup_notice(details, settings.notify_emails))
    except LabvaultError as exc:
        logger.warning("Backup %s: the failure notice was not sent: %s", details.sid, exc)


def build_backup(sid: str) -> dict[str, Any]:
    """Stream files and versions into the archive, seal it, mark the backup Completed, notify.

    Files go first: an object store is still uploading their last parts while the versions are
    written (versions are small, mostly CPU), so the two overlap instead of adding up."""
    with open_archive(sid) as archive:
        copy_files(sid, archive)
        snapshot_versions(sid, archive)
        sealed = seal_archive(sid, archive)
    verify_written_archive(sid, sealed)
    details = finish_backup(sid, sealed)
    if not notify(sid, return_state=True).is_completed():
        get_run_logger().warning("Backup %s is Completed but its notice could not be sent", sid)
    return details
