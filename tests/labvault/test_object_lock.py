"""Object Lock (LABVAULT_S3_OBJECT_LOCK) and legal hold against a server that enforces them:
SeaweedFS refuses to delete a locked version (AccessDenied), whoever asks. Where a test also runs
on moto, it says so."""

from __future__ import annotations

import time
import uuid
from datetime import timedelta
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from labvault import audit, deletion, expiry, legal_hold
from labvault.archive.safe_names import archive_key
from labvault.backups import start_backup
from labvault.db.models import Backup
from labvault.errors import InvalidInputError
from labvault.settings import Settings, get_settings
from labvault.storage.from_url import backups_store
from labvault.storage.s3 import S3Storage
from labvault.storage.store import Retention
from labvault.utc import utcnow
from tests.conftest import new_bucket, use_s3_endpoint
from tests.labvault.test_backups import request_for, run_backup

LOCK_SECONDS = 8  # how long the test's archives stay locked: long enough to try every delete


def s3() -> Any:
    """A plain boto3 client on the endpoint the AWS variables name: anyone holding the keys."""
    return boto3.session.Session().client("s3")


def locking_bucket() -> str:
    """A new bucket with Object Lock enabled (versioned, as S3 makes every such bucket)."""
    name = f"labvault-lock-{uuid.uuid4().hex[:10]}"
    s3().create_bucket(Bucket=name, ObjectLockEnabledForBucket=True)
    return name


def versions_of(bucket: str, key: str) -> list[str]:
    """Every version and delete marker of exactly `key`."""
    listing = s3().list_object_versions(Bucket=bucket, Prefix=key)
    return [v["VersionId"] for v in [*listing.get("Versions", []), *listing.get("DeleteMarkers", [])]
            if v["Key"] == key]


def assert_plain_delete_denied(bucket: str, key: str) -> str:
    """A plain boto3 delete of the object's one version, with the bucket's own keys, is refused;
    that version, still there."""
    [version] = versions_of(bucket, key)
    with pytest.raises(ClientError) as denied:
        s3().delete_object(Bucket=bucket, Key=key, VersionId=version)
    assert denied.value.response["Error"]["Code"] == "AccessDenied"
    return version


def everything_in(bucket: str) -> list[str]:
    listing = s3().list_object_versions(Bucket=bucket)
    return [v["Key"] for v in [*listing.get("Versions", []), *listing.get("DeleteMarkers", [])]]


@pytest.fixture
def seaweedfs(request: pytest.FixtureRequest) -> str:
    return use_s3_endpoint(request, "seaweedfs")


def backups_on(bucket: str, monkeypatch: pytest.MonkeyPatch, mode: str) -> Settings:
    """The backups store in `bucket` (files stay in the test's folder), Object Lock `mode`."""
    monkeypatch.setenv("LABVAULT_BACKUPS_URL", f"s3://{bucket}/backups")
    monkeypatch.setenv("LABVAULT_S3_OBJECT_LOCK", mode)
    monkeypatch.setenv("LABVAULT_S3_PART_SIZE_MB", "5")
    return get_settings()


def test_a_bucket_without_object_lock_is_refused_by_the_write_check_and_left_empty(settings, s3_endpoint, s3_server, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    # moto and SeaweedFS both answer ObjectLockConfigurationNotFoundError for such a bucket
    bucket = new_bucket()
    store = backups_store(backups_on(bucket, monkeypatch, "compliance"))
    with pytest.raises(InvalidInputError) as refused:
        store.check_writable()
    assert str(refused.value) == (
        f"LABVAULT_BACKUPS_URL 's3://{bucket}/backups': bucket {bucket!r} has no Object Lock, which "
        "LABVAULT_S3_OBJECT_LOCK=compliance needs; use a bucket created with Object Lock enabled, or "
        "unset LABVAULT_S3_OBJECT_LOCK")
    assert everything_in(bucket) == []


def test_a_locked_archive_outlives_every_delete_until_its_date(sessions, files, organization, settings, seaweedfs, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    bucket = locking_bucket()
    store = backups_store(backups_on(bucket, monkeypatch, "compliance"))
    store.check_writable()
    assert everything_in(bucket) == []  # the probe's version went too, not only behind a marker

    # kept 1 day, completed 1 day ago less LOCK_SECONDS: the lock ends LOCK_SECONDS from now
    finished = (utcnow() - timedelta(days=1, seconds=-LOCK_SECONDS)).replace(microsecond=0)
    sid = run_backup(sessions, files, store, request_for(organization), retention_days=1,
                     finished_at=finished)
    key = archive_key(organization.sid, sid)
    object_key = f"backups/{key}"
    with sessions() as session:
        expires = session.get(Backup, sid).date_expired
    assert expires == finished + timedelta(days=1)
    assert isinstance(store, S3Storage) and store.retention(key) == Retention("compliance", expires)

    version = assert_plain_delete_denied(bucket, object_key)

    # labvault's delete: refused in one line, nothing changed
    with sessions() as session, pytest.raises(InvalidInputError) as refused:
        deletion.delete_backup(session, store, sid, organization.admin_email)
    assert str(refused.value) == (f"backup {sid}'s archive is under Object Lock (compliance) until "
                                  f"{expires.isoformat(timespec='seconds')}; it can be deleted after that date")

    # expiry, the row's date moved earlier (a retention changed): the object's date decides
    with sessions() as session:
        session.get(Backup, sid).date_expired = utcnow() - timedelta(minutes=1)
        session.commit()
        report = expiry.expire_backups(session, store, stale_after=timedelta(hours=1))
    assert report.deleted == [] and report.kept == [
        f"{sid}: archive under Object Lock (compliance) until {expires.isoformat(timespec='seconds')}; "
        "left for a later run"]
    # expiry with a clock ahead of the server's: S3 itself refuses, and the run still ends well
    with sessions() as session:
        report = expiry.expire_backups(session, store, stale_after=timedelta(hours=1),
                                       now=expires + timedelta(minutes=5))
    assert report.deleted == [] and report.kept == [
        f"{sid}: cannot delete {key!r} from s3://{bucket}/backups: S3 refused it (Object Lock retention "
        "or a legal hold); left for a later run"]
    with sessions() as session:
        assert session.get(Backup, sid).date_deleted is None
        assert [e.action for e in audit.events_of(session, sid)] == ["created"]
    assert versions_of(bucket, object_key) == [version]

    time.sleep(max(0.0, (expires - utcnow()).total_seconds()) + 1)
    with sessions() as session:
        report = expiry.expire_backups(session, store, stale_after=timedelta(hours=1))
        assert report.deleted == [sid] and report.kept == []
        assert session.get(Backup, sid).date_deleted is not None
    assert versions_of(bucket, object_key) == []  # no bytes left behind a delete marker


def test_a_backup_on_legal_hold_is_kept_until_released(sessions, files, organization, settings, seaweedfs, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    # the bucket has Object Lock, the setting is off: the hold is still set on the archive
    bucket = locking_bucket()
    store = backups_store(backups_on(bucket, monkeypatch, ""))
    sid = run_backup(sessions, files, store, request_for(organization))
    object_key = f"backups/{archive_key(organization.sid, sid)}"
    with sessions() as session:
        legal_hold.set_legal_hold(session, store, sid, organization.admin_email, on=True)
    assert s3().get_object_legal_hold(Bucket=bucket, Key=object_key)["LegalHold"]["Status"] == "ON"
    assert_plain_delete_denied(bucket, object_key)

    with sessions() as session, pytest.raises(InvalidInputError) as refused:
        deletion.delete_backup(session, store, sid, organization.admin_email)
    assert str(refused.value) == (f"backup {sid} is on legal hold; an admin releases it first "
                                  f"(`labvault backup release {sid} --as ADMIN`)")
    with sessions() as session:
        report = expiry.expire_backups(session, store, stale_after=timedelta(hours=1),
                                       now=utcnow() + timedelta(days=31))
    assert report.deleted == [] and report.kept == [f"{sid}: on legal hold; kept until an admin releases it"]

    with sessions() as session:
        legal_hold.set_legal_hold(session, store, sid, organization.admin_email, on=False)
    assert s3().get_object_legal_hold(Bucket=bucket, Key=object_key)["LegalHold"]["Status"] == "OFF"
    with sessions() as session:
        deletion.delete_backup(session, store, sid, organization.admin_email)
        assert [(e.action, e.actor) for e in audit.events_of(session, sid)] == [
            ("created", organization.admin_email), ("held", organization.admin_email),
            ("released", organization.admin_email), ("deleted", organization.admin_email)]


@pytest.mark.parametrize(("on", "message"), [
    (True, "backup {sid} is already on legal hold; nothing was changed"),
    (False, "backup {sid} is not on legal hold; nothing was changed"),
])
def test_holding_twice_or_releasing_what_is_not_held_changes_nothing(sessions, files, backups_storage, organization, on, message) -> None:  # type: ignore[no-untyped-def]
    sid = run_backup(sessions, files, backups_storage, request_for(organization))
    if on:
        with sessions() as session:
            legal_hold.set_legal_hold(session, backups_storage, sid, organization.admin_email, on=True)
    with sessions() as session, pytest.raises(InvalidInputError) as refused:
        legal_hold.set_legal_hold(session, backups_storage, sid, organization.admin_email, on=on)
    assert str(refused.value) == message.format(sid=sid)
    with sessions() as session:
        assert session.get(Backup, sid).legal_hold is on
        assert [e.action for e in audit.events_of(session, sid)] == ["created", *(["held"] if on else [])]


def test_only_a_completed_backup_can_be_held(sessions, backups_storage, organization) -> None:  # type: ignore[no-untyped-def]
    with sessions() as session:
        sid = start_backup(session, request_for(organization))
    with sessions() as session, pytest.raises(InvalidInputError) as refused:
        legal_hold.set_legal_hold(session, backups_storage, sid, organization.admin_email, on=True)
    assert str(refused.value) == f"backup {sid} is In Progress; only a Completed backup can be put on legal hold"
    with sessions() as session:
        assert session.get(Backup, sid).legal_hold is False
