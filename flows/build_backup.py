"""The part of the job that create-backup and retry-backup share: archive, finish, notify.

Also the failure hook both flows use: whatever fails after a backup row exists turns that row
into Error with a one-line reason; the archive writer has already removed its partial output.
"""

from __future__ import annotations

from typing import Any

from prefect import get_run_logger
from prefect.artifacts import create_markdown_artifact
from prefect.logging.loggers import flow_run_logger

from labvault.backups import fail_backup, notice_recipients
from labvault.catalog import BackupDetails, backup_for_flow_run
from labvault.errors import LabvaultError, one_line
from labvault.notification import backup_notice
from tasks import context
from tasks.backup_steps import (
    copy_files,
    finish_backup,
    keep_alive,
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
    """Failure and crash hook: the run's backup (if it got one) goes to Error, people are told,
    and the run gets an artifact saying why and how to retry.

    Runs outside the flow's context (a run can fail before its body starts), so it logs through
    the flow run's logger rather than `get_run_logger()`."""
    logger = flow_run_logger(flow_run, flow)
    settings = context.settings()
    reason = failure_reason(state)
    details, recipients = None, []
    with context.sessions()() as session:
        backup = backup_for_flow_run(session, str(flow_run.id))
        newly_failed = backup is not None and fail_backup(session, backup.sid, reason)
        if backup is not None:
            session.refresh(backup)
            details = BackupDetails.of(backup, context.backups_storage())
            recipients = notice_recipients(session, backup)
    _publish_failure(details, reason, logger)
    if details is None or not newly_failed:
        return
    logger.error("Backup %s failed: %s", details.sid, details.error)
    try:
        context.notifier(logger).send(
            backup_notice(details, [*recipients, *settings.notify_emails], settings.public_url))
    except LabvaultError as exc:
        logger.warning("Backup %s: the failure notice was not sent: %s", details.sid, exc)


def failure_markdown(details: BackupDetails | None, reason: str) -> str:
    """What a failed run's artifact says: the reason, and the way to try again."""
    if details is None:
        return (f"# No backup was made\n\n**Reason:** {reason}\n\n"
                "Nothing was written. Fix what the reason names, then start the run again.\n")
    return (
        f"# Backup {details.sid} failed\n\n"
        f"**Reason:** {details.error or reason}\n\n"
        f"Organization `{details.organization_sid}`, requested by {details.requested_by}. "
        "The backup is in Error and no archive of it is kept.\n\n"
        "## How to retry (same sid)\n\n"
        f"- Prefect UI: run the **retry-backup** deployment with Backup `{details.sid}` and "
        "Requested by the email of an admin of the organization.\n"
        f"- CLI: `labvault backup retry {details.sid} --as <admin email>`\n"
    )


def _publish_failure(details: BackupDetails | None, reason: str, logger: Any) -> None:
    try:
        create_markdown_artifact(failure_markdown(details, reason),
                                 key=f"backup-{details.sid}-failure" if details else "backup-refused",
                                 description="Why this backup run failed and how to retry it")
    except Exception as exc:  # the artifact helps; it must not hide the failure being recorded
        logger.warning("The failure artifact could not be created: %s", one_line(exc))


def build_backup(sid: str) -> dict[str, Any]:
    """Stream files and versions into the archive, seal it, mark the backup Completed, notify.

    Files go first: an object store is still uploading their last parts while the versions are
    written (versions are small, mostly CPU), so the two overlap instead of adding up. The
    heartbeat beats from opening to finishing, verification included."""
    with keep_alive(sid):
        with open_archive(sid) as archive:
            copy_files(sid, archive)
            snapshot_versions(sid, archive)
            sealed = seal_archive(sid, archive)
        verify_written_archive(sid, sealed)
        details = finish_backup(sid, sealed)
    if not notify(sid, return_state=True).is_completed():
        get_run_logger().warning("Backup %s is Completed but its notice could not be sent", sid)
    return details
