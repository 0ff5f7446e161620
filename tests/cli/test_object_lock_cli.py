"""`labvault` with LABVAULT_S3_OBJECT_LOCK and `backup hold` / `release`, the backups store on
SeaweedFS (which enforces Object Lock), the files in the test's folder."""

from __future__ import annotations

import json

import pytest
from botocore.exceptions import ClientError
from sqlalchemy import func, select

from labvault import audit
from labvault.archive.safe_names import archive_key
from labvault.db.models import Backup
from labvault.storage.from_url import backups_store
from labvault.storage.s3 import S3Storage
from labvault.storage.store import Retention
from tests.cli.test_cli import labvault
from tests.conftest import new_bucket
from tests.labvault.test_object_lock import (  # noqa: F401 (seaweedfs: a fixture)
    backups_on,
    everything_in,
    locking_bucket,
    s3,
    seaweedfs,
    versions_of,
)


def create(organization) -> dict:  # type: ignore[no-untyped-def]
    result = labvault("backup", "create", "--org", organization.sid, "--name", "Nightly",
                      "--as", organization.admin_email, "--yes", "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_object_lock_with_a_folder_store_is_refused_before_any_work(sessions, settings, organization, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("LABVAULT_S3_OBJECT_LOCK", "governance")
    result = labvault("backup", "create", "--org", organization.sid, "--name", "Nightly",
                      "--as", organization.admin_email, "--yes")
    assert result.exit_code == 1
    assert result.stderr == (
        "error: LABVAULT_S3_OBJECT_LOCK=governance: Object Lock needs an S3 backups store, and "
        f"LABVAULT_BACKUPS_URL is {str(settings.home / 'backups')!r}; point it at s3://bucket/prefix "
        "or unset LABVAULT_S3_OBJECT_LOCK; fix that environment variable\n")
    with sessions() as session:
        assert session.scalar(select(func.count()).select_from(Backup)) == 0


def test_a_bad_object_lock_mode_is_refused_in_one_line(settings, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("LABVAULT_S3_OBJECT_LOCK", "forever")
    result = labvault("backup", "list")
    assert result.exit_code == 1
    assert result.stderr == ("error: LABVAULT_S3_OBJECT_LOCK: 'forever' is no Object Lock mode; use "
                             "governance or compliance, or leave it empty for none; fix that "
                             "environment variable\n")


def test_a_bucket_without_object_lock_is_refused_before_the_backup_exists(sessions, organization, seaweedfs, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    bucket = new_bucket()
    backups_on(bucket, monkeypatch, "compliance")
    result = labvault("backup", "create", "--org", organization.sid, "--name", "Nightly",
                      "--as", organization.admin_email, "--yes")
    assert result.exit_code == 1
    assert result.stderr == (
        f"error: LABVAULT_BACKUPS_URL 's3://{bucket}/backups': bucket {bucket!r} has no Object Lock, "
        "which LABVAULT_S3_OBJECT_LOCK=compliance needs; use a bucket created with Object Lock "
        "enabled, or unset LABVAULT_S3_OBJECT_LOCK\n")
    with sessions() as session:
        assert session.scalar(select(func.count()).select_from(Backup)) == 0
    assert everything_in(bucket) == []


def test_a_backup_made_with_object_lock_is_locked_until_it_expires(sessions, organization, seaweedfs, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    bucket = locking_bucket()
    settings = backups_on(bucket, monkeypatch, "compliance")
    created = create(organization)
    sid, key = created["sid"], archive_key(organization.sid, created["sid"])
    with sessions() as session:
        expires = session.get(Backup, sid).date_expired
    store = backups_store(settings)
    assert isinstance(store, S3Storage) and store.retention(key) == Retention("compliance", expires.replace(microsecond=0))

    deleted = labvault("backup", "delete", sid, "--as", organization.admin_email, "--yes")
    assert deleted.exit_code == 1
    assert deleted.stderr == (f"error: backup {sid}'s archive is under Object Lock (compliance) until "
                              f"{expires.isoformat(timespec='seconds')}; it can be deleted after that date\n")
    with sessions() as session:
        assert session.get(Backup, sid).date_deleted is None
    assert len(versions_of(bucket, f"backups/{key}")) == 1


def test_hold_refuses_delete_until_release(sessions, organization, seaweedfs, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    bucket = locking_bucket()  # Object Lock on the bucket, the setting off: holds reach the object
    backups_on(bucket, monkeypatch, "")
    sid = create(organization)["sid"]
    object_key = f"backups/{archive_key(organization.sid, sid)}"

    not_admin = labvault("backup", "hold", sid, "--as", organization.member_email)
    assert not_admin.exit_code == 1
    assert not_admin.stderr == f"error: '{organization.member_email}' is not an admin of organization '{organization.sid}'\n"
    held = labvault("backup", "hold", sid, "--as", organization.admin_email)
    assert held.exit_code == 0, held.output
    assert held.stdout == f"Backup {sid} (Nightly) is on legal hold: expiry keeps it and delete refuses it.\n"
    assert s3().get_object_legal_hold(Bucket=bucket, Key=object_key)["LegalHold"]["Status"] == "ON"
    shown = labvault("backup", "show", sid)
    assert "on legal hold: kept and not deletable until released" in shown.stdout
    assert json.loads(labvault("backup", "show", sid, "--json").stdout)["legal_hold"] is True
    assert [row["legal_hold"] for row in json.loads(labvault("backup", "list", "--json").stdout)] == [True]

    refused = labvault("backup", "delete", sid, "--as", organization.admin_email, "--yes")
    assert refused.exit_code == 1
    assert refused.stderr == (f"error: backup {sid} is on legal hold; an admin releases it first "
                              f"(`labvault backup release {sid} --as ADMIN`)\n")
    [version] = versions_of(bucket, object_key)
    with pytest.raises(ClientError) as denied:
        s3().delete_object(Bucket=bucket, Key=object_key, VersionId=version)
    assert denied.value.response["Error"]["Code"] == "AccessDenied"

    released = labvault("backup", "release", sid, "--as", organization.admin_email)
    assert released.exit_code == 0, released.output
    assert released.stdout == f"Backup {sid} (Nightly) is released from legal hold.\n"
    assert s3().get_object_legal_hold(Bucket=bucket, Key=object_key)["LegalHold"]["Status"] == "OFF"
    deleted = labvault("backup", "delete", sid, "--as", organization.admin_email, "--yes")
    assert deleted.exit_code == 0, deleted.output
    with sessions() as session:
        assert [(e.action, e.door) for e in audit.events_of(session, sid)] == [
            ("created", "cli"), ("held", "cli"), ("released", "cli"), ("deleted", "cli")]
