"""The scheduled clean-up: expired backups deleted (unless on legal hold or still locked), stale
runs reaped, archives of failed backups and orphaned partials removed, and restores killed midway
settled (their staging promoted if they committed, else removed).

Idempotent: a second run right after the first finds nothing to do.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from labvault import audit, object_lock
from labvault.archive.safe_names import archive_key
from labvault.backups import fail_backup
from labvault.db.models import Backup, BackupStatus
from labvault.deletion import remove_backup
from labvault.errors import InvalidInputError
from labvault.restore_staging import recover_staging
from labvault.storage.store import PARTIAL_SUFFIX, Storage
from labvault.utc import as_utc, utcnow

# A run's last sign of life: its heartbeat, or its start before the first beat.
LAST_SIGN_OF_LIFE = func.coalesce(Backup.heartbeat_at, Backup.date_created)


@dataclass
class ExpiryReport:
    """What one run did, by backup sid (storage key for archives and partials removed)."""

    deleted: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)  # expired, yet on legal hold or locked: why
    reaped: list[str] = field(default_factory=list)
    failed_archives_removed: list[str] = field(default_factory=list)
    orphans_removed: list[str] = field(default_factory=list)
    restores_settled: list[str] = field(default_factory=list)

    @property
    def did_nothing(self) -> bool:
        """Nothing changed (expired backups kept are only reported)."""
        return not (self.deleted or self.reaped or self.failed_archives_removed
                    or self.orphans_removed or self.restores_settled)


def delete_expired(session: Session, backups_storage: Storage, now: datetime
                   ) -> tuple[list[str], list[str]]:
    """Every Completed backup whose date_expired has passed: archive and listing. A backup on
    legal hold, or whose archive's Object Lock still runs (a retention changed since, or the
    server's clock behind ours: S3 refuses the delete), is kept and said why, for a later run.
    Returns (deleted, kept)."""
    due = session.scalars(
        select(Backup).where(Backup.date_deleted.is_(None), Backup.date_expired <= now)
        .order_by(Backup.date_expired)
    ).all()
    deleted, kept = [], []
    for backup in due:
        if backup.legal_hold:
            kept.append(f"{backup.sid}: on legal hold; kept until an admin releases it")
            continue
        key = archive_key(backup.organization_sid, backup.sid)
        retention = object_lock.retained(backups_storage, key, now)
        if retention is not None:
            kept.append(f"{backup.sid}: archive under Object Lock ({retention.mode}) until "
                        f"{retention.until.isoformat(timespec='seconds')}; left for a later run")
            continue
        audit.record(session, organization_sid=backup.organization_sid, backup_sid=backup.sid,
                     action="deleted", actor="expiry", door="flow", detail="expired")
        try:
            removed = remove_backup(session, backups_storage, backup, now)  # commits the event with it
        except InvalidInputError as exc:  # S3 refused: the server's clock is behind ours
            session.rollback()
            kept.append(f"{backup.sid}: {exc}; left for a later run")
            continue
        if removed:
            deleted.append(backup.sid)
    return deleted, kept


def reap_stale(session: Session, now: datetime, stale_after: timedelta) -> list[str]:
    """In Progress backups whose run has shown no progress within the window become Error."""
    stale = session.execute(
        select(Backup.sid, LAST_SIGN_OF_LIFE).where(
            Backup.status == BackupStatus.IN_PROGRESS, Backup.date_deleted.is_(None),
            LAST_SIGN_OF_LIFE < now - stale_after,
        )
    ).all()
    return [
        sid for sid, since in stale
        if fail_backup(session, sid, f"stale: no progress since {as_utc(since).isoformat()}")
    ]


def remove_archives_of_failed(session: Session, backups_storage: Storage) -> list[str]:
    """The whole archive of every Error backup: only a Completed backup's archive may be seen.

    A run killed (or reaped) after its archive got its final name and before it was marked
    Completed, during the verification that reads the archive back from there, leaves one.
    Verifying before the final name would not close that window (S3 cannot read a multipart
    upload before it completes, and a kill between commit and completion leaves the same), so
    the window is closed here, after the reaping above. Costs one existence check per Error
    backup. Each row is first claimed with a no-op UPDATE that locks it until the commit, so a
    retry cannot make it In Progress, and its new archive cannot be removed, in between.
    """
    removed = []
    failed = session.execute(
        select(Backup.sid, Backup.organization_sid)
        .where(Backup.status == BackupStatus.ERROR, Backup.date_deleted.is_(None))
    ).all()
    session.commit()  # the read ends here: each claim below is a write transaction of its own
    for sid, organization_sid in failed:
        claimed = session.execute(
            update(Backup).where(Backup.sid == sid, Backup.status == BackupStatus.ERROR,
                                 Backup.date_deleted.is_(None))
            .values(status=BackupStatus.ERROR)
        ).rowcount
        key = archive_key(organization_sid, sid)
        if claimed and backups_storage.exists(key):
            backups_storage.delete(key)
            removed.append(key)
        session.commit()
    return removed


def remove_orphaned_partials(session: Session, backups_storage: Storage, now: datetime,
                             stale_after: timedelta) -> list[str]:
    """Partial archives (files, pending multipart uploads) older than the window whose backup
    has shown no sign of life within it. A partial's own age says nothing of its run (an S3
    upload's start time never moves), the backup's heartbeat does."""
    window_start = now - stale_after
    alive = set(session.scalars(
        select(Backup.sid).where(LAST_SIGN_OF_LIFE >= window_start)
    ))
    removed = []
    for partial in backups_storage.list_partials():
        sid = partial.key.rsplit("/", 1)[-1].removesuffix(".zip")
        if sid in alive or partial.started > window_start:
            continue
        backups_storage.discard_partial(partial)
        removed.append(partial.key + PARTIAL_SUFFIX)
    return removed


def settle_restores(session: Session, files_storage: Storage, now: datetime,
                    stale_after: timedelta) -> list[str]:
    """Staging left in the files store by restores into this database that were killed."""
    recovered = recover_staging(session, files_storage, stale_after=stale_after, now=now)
    session.commit()
    return ([f"restore {run} committed: staged files moved into place" for run in recovered.promoted]
            + [f"restore {run} never committed: staged files removed" for run in recovered.discarded]
            + [f"restore {failure} (left for the next run)" for failure in recovered.failed])


def expire_backups(session: Session, backups_storage: Storage, *, stale_after: timedelta,
                   files_storage: Storage | None = None, now: datetime | None = None) -> ExpiryReport:
    now = now or utcnow()
    report = ExpiryReport()
    report.deleted, report.kept = delete_expired(session, backups_storage, now)
    report.reaped = reap_stale(session, now, stale_after)
    report.failed_archives_removed = remove_archives_of_failed(session, backups_storage)
    report.orphans_removed = remove_orphaned_partials(session, backups_storage, now, stale_after)
    if files_storage is not None:
        report.restores_settled = settle_restores(session, files_storage, now, stale_after)
    return report
