"""The steps of making a backup, as tasks: each one call into `labvault`, with logs and progress.

Tasks pass backup sids, never ORM objects. Retries are for transient errors only; the streaming
steps (versions, files, seal) are not retried by Prefect because a zip stream cannot be rewound:
they retry the opening of each blob inside the domain, and a later failure ends the backup in
Error, ready for a retry of the whole backup.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict
from decimal import Decimal
from functools import partial
from pathlib import Path
from typing import Any

from prefect import get_run_logger, task
from prefect.artifacts import (
    create_link_artifact,
    create_progress_artifact,
    create_table_artifact,
    update_progress_artifact,
)
from prefect.cache_policies import NO_CACHE

from labvault import backups, object_lock, reverification
from labvault.archive.rules import ArchiveLimits
from labvault.archive.writer import ArchiveWriter, SealedArchive
from labvault.backups import BackupRequest, ProgressRecorder
from labvault.catalog import BackupDetails, get_backup
from labvault.liveness import Heartbeat
from labvault.notification import backup_notice
from labvault.pricing import Estimate, Pricing, estimate_backup
from tasks import context
from tasks.retries import RETRY_TRANSIENT
from tasks.run_tags import requesting_door, tag_flow_run


def _progress_artifact(sid: str, what: str) -> Callable[[int, int], None]:
    """A progress artifact on the run for one step, fed that step's count and total by the
    domain's progress recorder."""
    artifact_id = create_progress_artifact(
        progress=0.0, key=f"{sid}-{what}", description=f"Backup {sid}: {what}"
    )

    def update(done: int, total: int) -> None:
        update_progress_artifact(artifact_id, progress=100.0 * done / total if total else 100.0)

    return update


def keep_alive(sid: str) -> Heartbeat:
    """The backup's heartbeat, beating from this process while the steps inside the `with` run
    (they run in the flow's process), so a long step never gets a live backup reaped."""
    return Heartbeat(context.sessions(), sid, run_id=context.run_id())


@task(name="estimate-backup", cache_policy=NO_CACHE, **RETRY_TRANSIENT)
def estimate(request: BackupRequest) -> Estimate:
    """Check the request, the credential blocks and the bucket's Object Lock (when archives are
    to be locked), then size and price the backup from SQL aggregates."""
    context.check_credentials()
    object_lock.check_bucket(context.backups_storage())
    with context.sessions()() as session:
        backups.check_request(session, request)
        result = estimate_backup(session, request.organization_sid,
                                 Pricing.of(context.settings()))
    get_run_logger().info("Estimate for %s: %d versions, %d files, ~%d bytes, %s %s",
                          request.organization_sid, result.versions, result.files,
                          result.estimated_bytes, result.cost, result.currency)
    return result


@task(name="start-backup", cache_policy=NO_CACHE, **RETRY_TRANSIENT)
def start_backup(request: BackupRequest, flow_run_id: str | None, cost: Decimal | None = None,
                 retention_days: int | None = None) -> str:
    """Check the requester is an admin and insert the backup row In Progress (retention 0 or
    None: LABVAULT_RETENTION_DAYS)."""
    with context.sessions()() as session:
        sid = backups.start_backup(session, request, flow_run_id=flow_run_id, cost=cost,
                                   retention_days=retention_days or None, door=requesting_door())
    tag_flow_run(request.organization_sid)
    get_run_logger().info("Backup %s of organization %s started by %s", sid,
                          request.organization_sid, request.requested_by)
    return sid


@task(name="restart-backup", cache_policy=NO_CACHE, **RETRY_TRANSIENT)
def restart_backup(sid: str, requested_by: str, flow_run_id: str | None) -> str:
    """Put an Error backup back In Progress under the same sid, for an admin of its organization
    (refused first if its archive is to be locked in a bucket that cannot)."""
    object_lock.check_bucket(context.backups_storage())
    with context.sessions()() as session:
        backups.restart_backup(session, sid, requested_by, flow_run_id=flow_run_id,
                               door=requesting_door())
        organization_sid = get_backup(session, sid).organization_sid
    tag_flow_run(organization_sid)
    get_run_logger().info("Backup %s restarted by %s", sid, requested_by)
    return sid


@task(name="open-archive", cache_policy=NO_CACHE)
def open_archive(sid: str) -> ArchiveWriter:
    """Open the pending archive; it stays invisible until sealed."""
    with context.sessions()() as session:
        return backups.open_archive(session, context.backups_storage(), sid)


@task(name="snapshot-versions", cache_policy=NO_CACHE)
def snapshot_versions(sid: str, archive: ArchiveWriter) -> int:
    """Stream every version of the organization into the archive as JSON."""
    sessions = context.sessions()
    progress = ProgressRecorder(sessions, sid, run_id=context.run_id(),
                                listener=_progress_artifact(sid, "versions"))
    with sessions() as session:
        count = backups.snapshot_versions(session, sid, archive, progress)
    get_run_logger().info("Backup %s: %d versions written", sid, count)
    return count


@task(name="copy-files", cache_policy=NO_CACHE)
def copy_files(sid: str, archive: ArchiveWriter) -> int:
    """Stream every uploaded file's bytes into the archive."""
    sessions = context.sessions()
    progress = ProgressRecorder(sessions, sid, run_id=context.run_id(),
                                listener=_progress_artifact(sid, "files"))
    with sessions() as session:
        count = backups.copy_files(session, sid, context.files(), archive, progress)
    get_run_logger().info("Backup %s: %d files copied", sid, count)
    return count


@task(name="seal-archive", cache_policy=NO_CACHE)
def seal_archive(sid: str, archive: ArchiveWriter) -> SealedArchive:
    """Write the manifest, finish the zip and commit it to its final key."""
    sealed = archive.seal()
    get_run_logger().info("Backup %s: archive %s sealed, %d bytes", sid, sealed.key, sealed.size)
    return sealed


@task(name="verify-archive", cache_policy=NO_CACHE)
def verify_written_archive(sid: str, sealed: SealedArchive) -> None:
    """Read the archive back from its destination and check every entry against the manifest
    (skipped when LABVAULT_VERIFY_AFTER_BACKUP is false)."""
    logger = get_run_logger()
    if not context.settings().verify_after_backup:
        logger.info("Backup %s: verification after writing is turned off", sid)
        return
    report = backups.verify_stored_archive(context.backups_storage(), sealed.key,
                                           ArchiveLimits.with_max_total(context.settings().archive_max_bytes))
    with context.sessions()() as session:
        reverification.record_verification(session, sid, None)
    logger.info("Backup %s: archive verified, %d entries, %d bytes match the manifest", sid,
                report.entries, report.total_bytes)


@task(name="finish-backup", cache_policy=NO_CACHE, **RETRY_TRANSIENT)
def finish_backup(sid: str, sealed: SealedArchive) -> dict[str, Any]:
    """Mark the backup Completed with its counts, size, link, cost and expiry (its archive
    locked until then with LABVAULT_S3_OBJECT_LOCK)."""
    storage = context.backups_storage()
    with context.sessions()() as session:
        backup = backups.finish_backup(session, sid, sealed, run_id=context.run_id(),
                                       file_path=storage.url(sealed.key),
                                       pricing=Pricing.of(context.settings()),
                                       lock=partial(object_lock.lock_archive, storage, sealed.key))
        details = asdict(BackupDetails.of(backup, storage))
    _publish_artifacts(details)
    return details


def _publish_artifacts(details: dict[str, Any]) -> None:
    """The backup's fields as a table and its download as a link, on the run's Artifacts tab."""
    sid = details["sid"]
    create_table_artifact([{"field": key, "value": "" if value is None else str(value)}
                           for key, value in details.items()],
                          key=f"backup-{sid}", description=f"Backup {sid} ({details['name']})")
    link = details["download_url"] or details["file_path"]
    if link:
        create_link_artifact(link if "://" in link else Path(link).as_uri(),
                             link_text=f"Download {sid}.zip", key=f"backup-{sid}-download",
                             description=f"Download of backup {sid}, valid until {details['date_expired']}")


@task(name="record-failure", cache_policy=NO_CACHE, **RETRY_TRANSIENT)
def record_attempt_failure(sid: str, reason: str) -> None:
    """Turn the backup into Error with the reason of this attempt."""
    with context.sessions()() as session:
        backups.fail_backup(session, sid, reason)
    get_run_logger().warning("Backup %s failed: %s", sid, reason)


@task(name="notify", cache_policy=NO_CACHE, **RETRY_TRANSIENT)
def notify(sid: str, to_admins: bool = False) -> None:
    """Tell the requester while still an admin (and LABVAULT_NOTIFY_EMAILS, and with `to_admins`
    every admin of the organization) how the backup ended."""
    settings = context.settings()
    with context.sessions()() as session:
        backup = get_backup(session, sid)
        details = BackupDetails.of(backup, context.backups_storage())
        recipients = backups.notice_recipients(session, backup, to_admins=to_admins)
    notice = backup_notice(details, [*recipients, *settings.notify_emails], settings.public_url)
    outcome = context.notifier(get_run_logger()).send(notice)
    get_run_logger().info("Backup %s: notice %r %s", sid, notice.subject, outcome)
