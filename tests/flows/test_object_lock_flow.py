"""The create-backup flow (the Prefect UI's door) with LABVAULT_S3_OBJECT_LOCK on SeaweedFS: a
bucket without Object Lock is refused before the backup row; with it, the finish step locks the
archive until the backup expires."""

from __future__ import annotations

from sqlalchemy import func, select

from labvault.archive.safe_names import archive_key
from labvault.db.models import Backup
from labvault.storage.from_url import backups_store
from labvault.storage.s3 import S3Storage
from labvault.storage.store import Retention
from tests.conftest import new_bucket
from tests.flows.test_create_backup import backup_of, run
from tests.labvault.test_object_lock import (  # noqa: F401 (seaweedfs: a fixture)
    backups_on,
    everything_in,
    locking_bucket,
    seaweedfs,
)


def test_the_flow_refuses_a_bucket_without_object_lock_before_any_row(sessions, organization, seaweedfs, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    bucket = new_bucket()
    backups_on(bucket, monkeypatch, "governance")
    state = run(organization)
    assert state.is_failed()
    assert state.message == (
        f"LABVAULT_BACKUPS_URL 's3://{bucket}/backups': bucket {bucket!r} has no Object Lock, which "
        "LABVAULT_S3_OBJECT_LOCK=governance needs; use a bucket created with Object Lock enabled, or "
        "unset LABVAULT_S3_OBJECT_LOCK")
    with sessions() as session:
        assert session.scalar(select(func.count()).select_from(Backup)) == 0
    assert everything_in(bucket) == []


def test_the_flow_locks_the_archive_until_the_backup_expires(sessions, organization, seaweedfs, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    settings = backups_on(locking_bucket(), monkeypatch, "governance")
    state = run(organization)
    assert state.is_completed(), state.message
    backup = backup_of(sessions, state)
    store = backups_store(settings)
    assert isinstance(store, S3Storage)
    assert store.retention(archive_key(organization.sid, backup.sid)) == Retention(
        "governance", backup.date_expired.replace(microsecond=0))
