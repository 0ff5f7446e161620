"""Legal hold: an admin keeps a Completed backup past its expiry (litigation, an inspection) until
an admin releases it. While held, expiry skips it and delete refuses it; where the bucket has
Object Lock, the archive itself is held too, so not even the bucket's owner deletes it."""

from __future__ import annotations

from sqlalchemy.orm import Session

from labvault import audit, object_lock
from labvault.archive.safe_names import archive_key
from labvault.backups import require_admin
from labvault.catalog import get_backup
from labvault.db.models import Backup, BackupStatus
from labvault.errors import InvalidInputError
from labvault.storage.store import Storage


def set_legal_hold(session: Session, backups_storage: Storage, sid: str, requested_by: str, *,
                   on: bool, door: str = "cli") -> Backup:
    """Put a Completed backup on legal hold (`on`) or release it, for an admin of its
    organization; audited. The archive's hold is set first, so a refusal by S3 changes nothing.
    Commits."""
    backup = get_backup(session, sid)
    require_admin(session, backup.organization_sid, requested_by)
    if on and backup.status is not BackupStatus.COMPLETED:
        raise InvalidInputError(f"backup {sid} is {backup.status.label}; only a Completed backup "
                                "can be put on legal hold")
    if backup.legal_hold == on:
        raise InvalidInputError(f"backup {sid} is {'already' if on else 'not'} on legal hold; "
                                "nothing was changed")
    object_lock.set_legal_hold(backups_storage, archive_key(backup.organization_sid, sid), on)
    backup.legal_hold = on
    audit.record(session, organization_sid=backup.organization_sid, backup_sid=sid,
                 action="held" if on else "released", actor=requested_by.strip(), door=door)
    session.commit()
    return backup
