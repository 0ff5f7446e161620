"""Deleting a backup: its archive leaves storage, its row leaves every listing (kept for audit)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import update
from sqlalchemy.orm import Session

from labvault import audit, object_lock
from labvault.archive.safe_names import archive_key
from labvault.backups import require_admin
from labvault.catalog import get_backup
from labvault.db.models import Backup, BackupStatus
from labvault.errors import InvalidInputError
from labvault.storage.store import PARTIAL_SUFFIX, Storage
from labvault.utc import utcnow


def check_delete(session: Session, sid: str, requested_by: str,
                 backups_storage: Storage | None = None, now: datetime | None = None) -> Backup:
    """Refuse unknown or deleted sids, non-admins, running backups, backups on legal hold and,
    given the store, archives under Object Lock until a later date, with one clear line."""
    backup = get_backup(session, sid)
    require_admin(session, backup.organization_sid, requested_by)
    if backup.status is BackupStatus.IN_PROGRESS:
        raise InvalidInputError(
            f"backup {sid} is In Progress; wait for it to end (or for the expiry flow to reap it) "
            "before deleting it"
        )
    if backup.legal_hold:
        raise InvalidInputError(f"backup {sid} is on legal hold; an admin releases it first "
                                f"(`labvault backup release {sid} --as ADMIN`)")
    retention = (object_lock.retained(backups_storage, archive_key(backup.organization_sid, sid),
                                      now or utcnow()) if backups_storage is not None else None)
    if retention is not None:
        raise InvalidInputError(f"backup {sid}'s archive is under Object Lock ({retention.mode}) until "
                                f"{retention.until.isoformat(timespec='seconds')}; it can be deleted "
                                "after that date")
    return backup


def remove_backup(session: Session, backups_storage: Storage, backup: Backup,
                  now: datetime | None = None) -> bool:
    """Remove the archive (and any leftover partial), then mark the row deleted. Commits.

    Idempotent and safe to race: storage deletes ignore missing keys, and only the caller whose
    update finds the row still undeleted gets True.
    """
    key = archive_key(backup.organization_sid, backup.sid)
    backups_storage.delete(key)
    backups_storage.delete(key + PARTIAL_SUFFIX)
    result = session.execute(
        update(Backup).where(Backup.sid == backup.sid, Backup.date_deleted.is_(None))
        .values(date_deleted=now or utcnow())
    )
    if not result.rowcount:  # someone else deleted it: the audit event pending here is not ours
        session.rollback()
        return False
    session.commit()
    return True


def delete_backup(session: Session, backups_storage: Storage, sid: str, requested_by: str,
                  door: str = "flow") -> Backup:
    """Delete one backup on an admin's request; the audit trail keeps who did it."""
    backup = check_delete(session, sid, requested_by, backups_storage)
    audit.record(session, organization_sid=backup.organization_sid, backup_sid=sid, action="deleted",
                 actor=requested_by.strip(), door=door)
    remove_backup(session, backups_storage, backup)
    return backup
