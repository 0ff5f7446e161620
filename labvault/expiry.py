"""The scheduled clean-up: expired backups deleted, stale runs reaped, orphaned partials removed,
and restores killed midway settled (their staging promoted if they committed, else removed).

Idempotent: a second run right after the first finds nothing to do.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from labvault.backups import fail_backup
from labvault.deletion import remove_backup
from labvault.models import Backup, BackupStatus, as_utc, utcnow
from labvault.restore_staging import recover_staging
from labvault.storage import PARTIAL_SUFFIX, Storage


@dataclass
class ExpiryReport:
    """What one run did, by backup sid (and storage key for orphans)."""

    deleted: list[str] = field(default_factory=list)
    reaped: list[str] = field(default_factory=list)
    orphans_removed: list[str] = field(default_factory=list)
    restores_settled: list[str] = field(default_factory=list)

    @property
    def did_nothing(self) -> bool:
        return not (self.deleted or self.reaped or self.orphans_removed or self.restores_settled)


def delete_expired(session: Session, backups_storage: Storage, now: datetime) -> list[str]:
    """Every Completed backup whose date_expired has passed: archive and listing."""
    due = session.scalars(
        select(Backup).where(Backup.date_deleted.is_(None), Backup.date_expired <= now)
        .order_by(Backup.date_expired)
    ).all()
    return [backup.sid for backup in due if remove_backup(session, backups_storage, backup, now)]


def reap_stale(session: Session, now: datetime, stale_after: timedelta) -> list[str]:
    """In Progress backups whose run has shown no progress within the window become Error."""
    last_sign = func.coalesce(Backup.heartbeat_at, Backup.date_created)
    stale = session.execute(
        select(Backup.sid, last_sign).where(
            Backup.status == BackupStatus.IN_PROGRESS, Backup.date_deleted.is_(None),
            last_sign < now - stale_after,
        )
    ).all()
    return [
        sid for sid, since in stale
        if fail_backup(session, sid, f"stale: no progress since {as_utc(since).isoformat()}")
    ]


def remove_orphaned_partials(session: Session, backups_storage: Storage, now: datetime,
                             stale_after: timedelta) -> list[str]:
    """Partial archives (files, pending multipart uploads) older than the window whose backup
    is not running any more."""
    running = set(session.scalars(
        select(Backup.sid).where(Backup.status == BackupStatus.IN_PROGRESS)
    ))
    removed = []
    for partial in backups_storage.list_partials():
        sid = partial.key.rsplit("/", 1)[-1].removesuffix(".zip")
        if sid in running or partial.started > now - stale_after:
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
    report.deleted = delete_expired(session, backups_storage, now)
    report.reaped = reap_stale(session, now, stale_after)
    report.orphans_removed = remove_orphaned_partials(session, backups_storage, now, stale_after)
    if files_storage is not None:
        report.restores_settled = settle_restores(session, files_storage, now, stale_after)
    return report
