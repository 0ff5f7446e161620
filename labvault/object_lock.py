"""S3 Object Lock of archives (LABVAULT_S3_OBJECT_LOCK): each Completed backup's archive is locked
until its expiry date, so no one (labvault, an admin with the bucket's keys, a plain boto3 delete)
removes it before then. A folder store, or S3 with the setting off, locks nothing."""

from __future__ import annotations

from datetime import datetime

from labvault.storage.s3 import S3Storage
from labvault.storage.store import Retention, Storage


def _locking(storage: Storage) -> S3Storage | None:
    """The store when it locks archives."""
    return storage if isinstance(storage, S3Storage) and storage.object_lock else None


def check_bucket(storage: Storage) -> None:
    """Refuse, before any work, a store that is to lock archives in a bucket that cannot."""
    locking = _locking(storage)
    if locking is not None:
        locking.check_object_lock()


def lock_archive(storage: Storage, key: str, until: datetime) -> None:
    """Lock a sealed archive until its backup expires. Set once the expiry date is known, at
    completion: an archive that fails verification, or whose backup ends in Error, stays
    removable."""
    locking = _locking(storage)
    if locking is not None:
        locking.retain(key, until)


def retained(storage: Storage, key: str, now: datetime) -> Retention | None:
    """The archive's retention when it still forbids deleting it at `now`. Read from the object
    itself: its date equals the backup's expiry, yet clocks differ and the expiry may move."""
    locking = _locking(storage)
    retention = locking.retention(key) if locking is not None else None
    return retention if retention is not None and retention.until > now else None


def set_legal_hold(storage: Storage, key: str, on: bool) -> bool:
    """Mirror a backup's legal hold on its archive where the bucket can hold objects (one made
    with Object Lock, whatever LABVAULT_S3_OBJECT_LOCK says); returns whether it did."""
    if not isinstance(storage, S3Storage) or not storage.has_object_lock():
        return False
    storage.set_legal_hold(key, on)
    return True
