"""The create-backup flow's tasks: each one step of `labvault.backups`, with logs and progress.

Tasks pass backup sids, never ORM objects. Retries are for transient errors only; the streaming
steps (versions, files, seal) are not retried by Prefect because a zip stream cannot be rewound:
they retry the opening of each blob inside the domain, and a later failure ends the backup in
Error, ready for a retry of the whole backup.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict
from typing import Any

from prefect import get_run_logger, task
from prefect.artifacts import create_progress_artifact, update_progress_artifact
from prefect.cache_policies import NO_CACHE
from prefect.tasks import exponential_backoff

from labvault import backups
from labvault.archive import ArchiveWriter, SealedArchive
from labvault.backups import BackupDetails, BackupRequest, ProgressRecorder
from labvault.database import session_factory
from labvault.errors import TransientError
from labvault.notification import LogNotifier, backup_notice
from labvault.settings import get_settings
from labvault.storage import backups_store, files_store


def is_transient(task: Any, task_run: Any, state: Any) -> bool:
    """Retry only what may pass by itself; a permanent error fails at once."""
    try:
        state.result()
    except TransientError:
        return True
    except BaseException:
        return False
    return False


RETRY_TRANSIENT: dict[str, Any] = {
    "retries": 3,
    "retry_delay_seconds": exponential_backoff(backoff_factor=2),
    "retry_condition_fn": is_transient,
}


def _sessions():  # type: ignore[no-untyped-def]
    return session_factory(get_settings().database_url)


def _progress_artifact(sid: str, what: str) -> Callable[[int, int], None]:
    """A progress artifact on the run, fed by the domain's progress recorder."""
    artifact_id = create_progress_artifact(
        progress=0.0, key=f"{sid}-{what}", description=f"Backup {sid}: {what}"
    )

    def update(done: int, total: int) -> None:
        update_progress_artifact(artifact_id, progress=100.0 * done / total if total else 100.0)

    return update


@task(name="start-backup", cache_policy=NO_CACHE, **RETRY_TRANSIENT)
def start_backup(organization_sid: str, name: str, description: str, requested_by: str,
                 flow_run_id: str | None) -> str:
    """Check the requester is an admin and insert the backup row In Progress."""
    request = BackupRequest(organization_sid, name, description, requested_by)
    with _sessions()() as session:
        sid = backups.start_backup(session, request, flow_run_id=flow_run_id)
    get_run_logger().info("Backup %s of organization %s started by %s", sid, organization_sid,
                          requested_by)
    return sid


@task(name="open-archive", cache_policy=NO_CACHE)
def open_archive(sid: str) -> ArchiveWriter:
    """Open the pending archive; it stays invisible until sealed."""
    with _sessions()() as session:
        return backups.open_archive(session, backups_store(get_settings().backups_url), sid)


@task(name="snapshot-versions", cache_policy=NO_CACHE)
def snapshot_versions(sid: str, archive: ArchiveWriter) -> int:
    """Stream every version of the organization into the archive as JSON."""
    sessions = _sessions()
    progress = ProgressRecorder(sessions, sid, listener=_progress_artifact(sid, "versions"))
    with sessions() as session:
        count = backups.snapshot_versions(session, sid, archive, progress)
    get_run_logger().info("Backup %s: %d versions written", sid, count)
    return count


@task(name="copy-files", cache_policy=NO_CACHE)
def copy_files(sid: str, archive: ArchiveWriter) -> int:
    """Stream every uploaded file's bytes into the archive."""
    sessions = _sessions()
    progress = ProgressRecorder(sessions, sid, listener=_progress_artifact(sid, "files"))
    with sessions() as session:
        count = backups.copy_files(session, sid, files_store(get_settings().files_url), archive,
                                   progress)
    get_run_logger().info("Backup %s: %d files copied", sid, count)
    return count


@task(name="seal-archive", cache_policy=NO_CACHE)
def seal_archive(sid: str, archive: ArchiveWriter) -> SealedArchive:
    """Write the manifest, finish the zip and commit it to its final key."""
    sealed = archive.seal()
    get_run_logger().info("Backup %s: archive %s sealed, %d bytes", sid, sealed.key, sealed.size)
    return sealed


@task(name="finish-backup", cache_policy=NO_CACHE, **RETRY_TRANSIENT)
def finish_backup(sid: str, sealed: SealedArchive) -> dict[str, Any]:
    """Mark the backup Completed with its counts, size, link and expiry."""
    settings = get_settings()
    link = backups_store(settings.backups_url).link(sealed.key)
    with _sessions()() as session:
        backup = backups.finish_backup(session, sid, sealed, link=link,
                                       retention_days=settings.retention_days)
        return asdict(BackupDetails.of(backup))


@task(name="notify", cache_policy=NO_CACHE)
def notify(sid: str) -> None:
    """Tell the requester how the backup ended (logged until email is configured)."""
    with _sessions()() as session:
        details = BackupDetails.of(backups.get_backup(session, sid))
    LogNotifier(get_run_logger()).send(backup_notice(details))
