"""Both stores on a real S3 protocol endpoint (moto_server, then SeaweedFS, over HTTP as
production talks to S3), with faults injected into part uploads by a proxy."""

from __future__ import annotations

import io
import zipfile
from datetime import timedelta

import httpx
import pytest
import s3fs
from sqlalchemy import select

from flows.delete_backup import delete_backup
from labvault import expiry
from labvault.catalog import BackupDetails
from labvault.db.models import Backup, BackupStatus
from labvault.settings import Settings, get_settings
from labvault.storage.from_url import backups_store, files_store
from labvault.utc import utcnow
from tests.archive_checks import assert_archive_matches
from tests.factories import make_organization
from tests.flows.test_create_backup import backup_of, run
from tests.s3_endpoint import FaultProxy

BIG_FILE_NAMES = ["big scan.tif", "notes.txt", "data.csv"]


@pytest.fixture
def s3_organization(sessions, s3_settings: Settings):  # type: ignore[no-untyped-def]
    """Files on S3; the first is 2.1 MB, one more is made larger than a 5 MiB part below."""
    with sessions() as session:
        organization = make_organization(session, files_store(s3_settings), file_names=BIG_FILE_NAMES)
    row, _ = next(iter(organization.files.values()))
    big = bytes(range(256)) * (12 * 4096)  # 12.6 MB: three parts
    pending = files_store(s3_settings).open_write(row.storage_key)
    pending.write(big)
    pending.commit()
    with sessions() as session:
        session.get(type(row), row.uid).size = len(big)
        session.commit()
    organization.files[row.uid] = (row, big)
    return organization


def read_archive(settings: Settings, backup: Backup, tmp_path) -> "zipfile.Path":  # type: ignore[no-untyped-def]
    storage = backups_store(settings)
    path = tmp_path / f"{backup.sid}.zip"
    with storage.open_read(f"{backup.organization_sid}/{backup.sid}.zip") as source:
        path.write_bytes(source.read())
    return path


def pending_uploads(bucket: str) -> list:  # type: ignore[type-arg]
    return s3fs.S3FileSystem(skip_instance_cache=True).list_multipart_uploads(bucket)


def test_a_backup_from_s3_to_s3_downloads_by_its_presigned_link(sessions, s3_settings, s3_bucket, s3_organization, tmp_path) -> None:  # type: ignore[no-untyped-def]
    state = run(s3_organization)
    assert state.is_completed(), state.message
    backup = backup_of(sessions, state)
    assert backup.status is BackupStatus.COMPLETED
    assert backup.file_path == f"s3://{s3_bucket}/backups/{s3_organization.sid}/{backup.sid}.zip"
    archive = read_archive(s3_settings, backup, tmp_path)
    assert backup.file_size > 3 * 5 * 1024 * 1024 // 2  # spans several 5 MiB parts
    assert_archive_matches(archive, s3_organization, backup)

    details = BackupDetails.of(backup, backups_store(s3_settings))
    assert "Signature=" in details.download_url or "X-Amz-Signature=" in details.download_url
    downloaded = httpx.get(details.download_url, timeout=60)
    assert downloaded.status_code == 200
    assert downloaded.content == archive.read_bytes()
    with zipfile.ZipFile(io.BytesIO(downloaded.content)) as zf:
        assert zf.testzip() is None
    assert pending_uploads(s3_bucket) == []

    delete_backup(backup_sid=backup.sid, requested_by=s3_organization.admin_email)
    assert not backups_store(s3_settings).exists(f"{s3_organization.sid}/{backup.sid}.zip")


@pytest.fixture
def fault_proxy(s3_endpoint: str, s3_settings: Settings, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    """Every S3 call of the backup goes through the fault-injecting proxy."""
    proxy = FaultProxy(s3_endpoint)
    monkeypatch.setenv("AWS_ENDPOINT_URL", proxy.url)
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "3")
    yield proxy
    proxy.close()


def test_a_part_upload_failing_once_is_survived(sessions, s3_bucket, s3_organization, fault_proxy, tmp_path) -> None:  # type: ignore[no-untyped-def]
    fault_proxy.failures = 1
    state = run(s3_organization)
    assert state.is_completed(), state.message
    assert fault_proxy.failed == 1 and fault_proxy.part_uploads >= 4
    backup = backup_of(sessions, state)
    assert_archive_matches(read_archive(get_settings(), backup, tmp_path), s3_organization, backup)
    assert pending_uploads(s3_bucket) == []


def test_part_uploads_failing_for_good_leave_error_no_object_no_pending_upload(sessions, s3_settings, s3_bucket, s3_organization, fault_proxy) -> None:  # type: ignore[no-untyped-def]
    fault_proxy.failures = -1
    state = run(s3_organization)
    assert state.is_failed()
    backup = backup_of(sessions, state)
    assert backup.status is BackupStatus.ERROR
    assert backup.error == (f"upload of s3://{s3_bucket}/backups/{s3_organization.sid}/{backup.sid}.zip "
                            "failed after retries: injected fault")
    assert fault_proxy.failed >= 3  # retried before giving up
    storage = backups_store(s3_settings)
    assert storage.list() == []
    assert pending_uploads(s3_bucket) == []


def test_a_download_cut_off_midway_leaves_error_naming_the_file_and_nothing_else(sessions, s3_settings, s3_bucket, s3_organization, fault_proxy) -> None:  # type: ignore[no-untyped-def]
    row, _ = next(iter(s3_organization.files.values()))  # the 12.6 MB file, copied first
    fault_proxy.cut_downloads = row.storage_key
    state = run(s3_organization)
    assert state.is_failed()
    backup = backup_of(sessions, state)
    assert backup.status is BackupStatus.ERROR
    assert backup.error.startswith(f"file {row.uid} ({row.name}): reading it from the files store failed: ")
    assert backups_store(s3_settings).list() == []
    assert pending_uploads(s3_bucket) == []


def test_a_small_file_cut_off_once_is_read_again_and_the_backup_completes(sessions, s3_settings, s3_bucket, s3_organization, fault_proxy, tmp_path) -> None:  # type: ignore[no-untyped-def]
    row, _ = list(s3_organization.files.values())[1]  # a small file: read whole while opened
    assert row.size < 1024 * 1024
    fault_proxy.cut_downloads, fault_proxy.cuts_left = row.storage_key, 1
    state = run(s3_organization)
    assert state.is_completed()
    assert fault_proxy.cuts_left == -1  # cut once, then fetched again
    backup = backup_of(sessions, state)
    assert_archive_matches(read_archive(get_settings(), backup, tmp_path), s3_organization, backup)


def test_expiry_aborts_stale_multipart_uploads_under_the_prefix_only(sessions, s3_settings, s3_bucket, s3_organization, s3_server) -> None:  # type: ignore[no-untyped-def]
    from flows.expire_backups import expire_backups

    fs = s3fs.S3FileSystem(skip_instance_cache=True)
    for path in (f"{s3_bucket}/backups/org-1/bk-dead.zip", f"{s3_bucket}/elsewhere/keep.bin"):
        upload = fs.open(path, "wb", block_size=5 * 1024 * 1024, autocommit=False)
        upload.write(b"z" * (6 * 1024 * 1024))  # a killed worker's upload: begun, never finished
    report = expire_backups(stale_after_minutes=1)
    if s3_server == "moto":  # moto lists every upload as initiated on 2010-11-10: stale at once
        assert report["orphans_removed"] == ["org-1/bk-dead.zip.partial"]
    else:  # SeaweedFS, like S3, lists when it began: kept while younger than the window...
        assert report["orphans_removed"] == []
        assert len(pending_uploads(s3_bucket)) == 2
        with sessions() as session:  # ...and aborted by a run two minutes later
            later = expiry.expire_backups(session, backups_store(s3_settings), stale_after=timedelta(minutes=1),
                                          now=utcnow() + timedelta(minutes=2))
        assert later.orphans_removed == ["org-1/bk-dead.zip.partial"]
    assert [u["Key"] for u in pending_uploads(s3_bucket)] == ["elsewhere/keep.bin"]
    with sessions() as session:
        assert session.scalars(select(Backup)).all() == []
