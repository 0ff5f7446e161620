"""A restore never touches what its archive's organization does not own, and never loses what
the target held (issue 13, items 1 to 5, and the restore half of 9). Every test runs on SQLite
and PostgreSQL: the target is the test's own database and files store, already holding
organization org-1."""

from __future__ import annotations

import hashlib
import io
import json
import os
import signal
import subprocess
import sys
import time
import zipfile
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import MetaData, select

from labvault.db.models import File, RestoreRun
from labvault.errors import InvalidInputError, TransientError
from labvault.restore import MergePolicy, restore_archive
from labvault.restore_staging import STAGING_PREFIX, recover_staging
from labvault.storage.folders import FsspecStorage
from labvault.zipstream.format import DEFLATED
from tests.labvault.test_backups import request_for, run_backup
from tests.zip_forge import ORG, ArchivePlan, Forged, forge, manifest, version_document


def target_digest(sessions, files: FsspecStorage, *, skip_tables: tuple[str, ...] = ()) -> str:  # type: ignore[no-untyped-def]
    """A hash of every row of every table and of every blob's bytes: what must not change."""
    digest = hashlib.sha256()
    with sessions() as session:
        tables = MetaData()
        tables.reflect(bind=session.connection())
        for name in sorted(set(tables.tables) - set(skip_tables)):
            table = tables.tables[name]
            rows = session.execute(select(table)).all()
            for row in sorted(repr(tuple(row)) for row in rows):
                digest.update(f"{name}:{row}\n".encode())
    for key in files.list():
        with files.open_read(key) as blob:
            digest.update(key.encode() + b"\0" + hashlib.sha256(blob.read()).digest())
    return digest.hexdigest()


def restore(sessions, files: FsspecStorage, data: bytes | Callable[[], Any],  # type: ignore[no-untyped-def]
            merge: MergePolicy | None = None):
    opener = (lambda: io.BytesIO(data)) if isinstance(data, bytes) else data
    with sessions() as session:
        return restore_archive(opener, label="hostile.zip", session=session, files_storage=files, merge=merge)


def refused(sessions, files, data, message: str, merge: MergePolicy | None = None) -> None:  # type: ignore[no-untyped-def]
    """The restore is refused with exactly `message`, and the target is as it was."""
    before = target_digest(sessions, files)
    with pytest.raises(InvalidInputError) as caught:
        restore(sessions, files, data, merge)
    assert str(caught.value) == message
    assert target_digest(sessions, files) == before, "a refused restore changed the target"


def some_file(organization) -> tuple[File, bytes]:  # type: ignore[no-untyped-def]
    return next(iter(organization.files.values()))


# --- 1: keys an archive may write --------------------------------------------------------------

@pytest.mark.parametrize("merge", [None, MergePolicy.SKIP, MergePolicy.OVERWRITE])
def test_a_storage_key_of_another_organization_is_refused(sessions, files, organization, merge) -> None:  # type: ignore[no-untyped-def]
    row, _ = some_file(organization)
    data = ArchivePlan().file("u-new", b"evil bytes", storage_key=row.storage_key).build()
    refused(sessions, files, data,
            f"entry '{ORG}/u-new_name.bin': storage key {row.storage_key!r} is outside organization "
            f"{ORG!r}; nothing was restored", merge)


def test_under_skip_a_key_another_file_uses_is_skipped_and_no_byte_is_written(sessions, files, organization) -> None:  # type: ignore[no-untyped-def]
    row, original = some_file(organization)
    data = ArchivePlan(org=organization.sid).file("u-new", b"other bytes", storage_key=row.storage_key).build()
    before = target_digest(sessions, files, skip_tables=("restore_runs",))
    report = restore(sessions, files, data, MergePolicy.SKIP)
    assert (report.files, report.skipped) == (0, 1)
    assert target_digest(sessions, files, skip_tables=("restore_runs",)) == before
    with files.open_read(row.storage_key) as blob:
        assert blob.read() == original


def test_without_merge_a_key_another_file_uses_is_a_conflict(sessions, files, organization) -> None:  # type: ignore[no-untyped-def]
    row, _ = some_file(organization)
    plan = ArchivePlan(org=organization.sid, header={"organization": {"sid": organization.sid, "name": "x"}})
    data = plan.file("u-new", b"other bytes", storage_key=row.storage_key).build()
    refused(sessions, files, data,
            f"the target already holds a file ({row.uid!r}) under storage key {row.storage_key!r}, "
            f"organization {organization.sid!r}; restore into an empty target or pass --merge skip "
            "(keep what is there) or --merge overwrite (replace it)")
    refused(sessions, files, data,
            f"entry '{organization.sid}/u-new_name.bin': a file ({row.uid!r}) under storage key "
            f"{row.storage_key!r} that --merge overwrite would not replace (another file's); nothing was restored",
            MergePolicy.OVERWRITE)


# --- 2: a failed overwrite keeps every old byte and row ----------------------------------------

def test_an_overwrite_failing_late_leaves_every_old_byte_and_row(sessions, files, backups_storage, organization, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """The archive changes between verification and writing, in its last file: by then every
    other blob was written. The old blobs, rows and nothing else are what is left."""
    sid = run_backup(sessions, files, backups_storage, request_for(organization))
    archive = Path(backups_storage.url(f"{organization.sid}/{sid}.zip"))
    with sessions() as session:  # the target moves on after the backup: new bytes to lose
        for row in session.scalars(select(File)):
            pending = files.open_write(row.storage_key)
            pending.write(b"changed since the backup " + row.uid.encode())
            pending.commit()
    with zipfile.ZipFile(archive) as zf:
        last = max((i for i in zf.infolist() if not i.filename.endswith(".json")), key=lambda i: i.header_offset)
    damaged = bytearray(archive.read_bytes())
    damaged[last.header_offset + 30 + len(last.filename.encode()) + last.compress_size // 2] ^= 1
    reads = iter([archive.read_bytes(), bytes(damaged)])
    before = target_digest(sessions, files)
    with pytest.raises(InvalidInputError, match="changed since it was verified"):
        restore(sessions, files, lambda: io.BytesIO(next(reads)), MergePolicy.OVERWRITE)
    assert target_digest(sessions, files) == before
    assert not files.list(STAGING_PREFIX)


def test_an_overwrite_replaces_bytes_only_after_the_rows_commit(sessions, files, backups_storage, organization) -> None:  # type: ignore[no-untyped-def]
    sid = run_backup(sessions, files, backups_storage, request_for(organization))
    archive = Path(backups_storage.url(f"{organization.sid}/{sid}.zip")).read_bytes()
    row, original = some_file(organization)
    pending = files.open_write(row.storage_key)
    pending.write(b"changed")
    pending.commit()
    report = restore(sessions, files, archive, MergePolicy.OVERWRITE)
    assert report.files == len(organization.files)
    with files.open_read(row.storage_key) as blob:
        assert blob.read() == original
    assert not files.list(STAGING_PREFIX)


# --- 3: every entry is checked, not the first 10,000 -------------------------------------------

def test_entry_10001_naming_another_organizations_version_is_refused(sessions, files, organization) -> None:  # type: ignore[no-untyped-def]
    plan = ArchivePlan()
    for number in range(10_000):
        plan.version(f"v{number}")
    theirs = next(iter(organization.versions))
    data = plan.version(theirs).build()
    for merge in (None, MergePolicy.SKIP, MergePolicy.OVERWRITE):
        refused(sessions, files, data, f"version {theirs!r} belongs to organization {organization.sid!r} in the "
                f"target, not to the archive's {ORG!r}; nothing was restored", merge)


def test_entry_10001_naming_another_organizations_file_is_refused(sessions, files, organization) -> None:  # type: ignore[no-untyped-def]
    plan = ArchivePlan()
    for number in range(10_000):
        plan.version(f"v{number}")
    row, _ = some_file(organization)
    data = plan.file(row.uid, b"evil").build()
    refused(sessions, files, data, f"file {row.uid!r} belongs to organization {organization.sid!r} in the "
            f"target, not to the archive's {ORG!r}; nothing was restored", MergePolicy.OVERWRITE)


# --- 4: lying manifests ------------------------------------------------------------------------

def test_two_files_claiming_one_storage_key_are_refused(sessions, files, organization) -> None:  # type: ignore[no-untyped-def]
    data = ArchivePlan().file("u1", b"one").file("u2", b"two", storage_key=f"{ORG}/u1").build()
    refused(sessions, files, data, f"manifest entries '{ORG}/u1_name.bin' and '{ORG}/u2_name.bin' both claim "
            f"storage key '{ORG}/u1'; nothing was restored")


def test_versions_attached_to_another_organizations_record_are_refused(sessions, files, organization) -> None:  # type: ignore[no-untyped-def]
    theirs = next(iter(organization.versions.values())).record_sid
    data = ArchivePlan().version("v1", version_document("v1", record_sid=theirs)).build()
    refused(sessions, files, data, f"record {theirs!r} belongs to organization {organization.sid!r} in the "
            f"target, not to the archive's {ORG!r}; nothing was restored")
    data = ArchivePlan().file("u1", b"one", record_sid=theirs).build()
    refused(sessions, files, data, f"record {theirs!r} belongs to organization {organization.sid!r} in the "
            f"target, not to the archive's {ORG!r}; nothing was restored")


# --- 9: malformed fields, one line each ---------------------------------------------------------

@pytest.mark.parametrize(("fields", "problem"), [
    ({"storage_key": 12}, "storage_key: Input should be a valid string"),
    ({"storage_key": ["a"]}, "storage_key: Input should be a valid string"),
    ({"record_sid": ["r1"]}, "record_sid: Input should be a valid string"),
    ({"created_at": 12}, "created_at: Input should be a valid datetime"),
])
def test_a_malformed_file_entry_is_refused_in_one_line(sessions, files, fields, problem) -> None:  # type: ignore[no-untyped-def]
    data = ArchivePlan().file("u1", b"one", **fields).build()
    refused(sessions, files, data, f"archive hostile.zip failed verification: manifest entry "
            f"'{ORG}/u1_name.bin' is malformed: {problem}; nothing was restored")


def test_a_manifest_without_its_created_date_is_refused(sessions, files) -> None:  # type: ignore[no-untyped-def]
    plan = ArchivePlan().file("u1", b"one")
    document = manifest([line for _, line in plan.items])
    del document["created"]
    data = forge([entry for entry, _ in plan.items]
                 + [Forged(f"{ORG}/manifest.json", json.dumps(document).encode(), method=DEFLATED)])
    refused(sessions, files, data, "archive hostile.zip failed verification: manifest is malformed: "
            "created: Field required; nothing was restored")


DEEP = b"[" * 1000 + b"]" * 1000


@pytest.mark.parametrize(("document", "problem"), [
    (b'{"sid": "v1", "record_sid": "r1", "number": Infinity, "created_at": "2026-01-01T00:00:00Z", "data": {}}',
     "is malformed: number: Input should be a valid integer"),
    (b'{"sid": "v1", "record_sid": "r1", "number": 1000000000000000000000000000000, '
     b'"created_at": "2026-01-01T00:00:00Z", "data": {}}',
     "is malformed: number: Input should be less than or equal to 2147483647"),
    (b'{"sid": "v1", "record_sid": "r1", "number": 1, "created_at": "2026-01-01T00:00:00Z", "data": '
     + DEEP + b"}", "is not JSON: Invalid JSON: recursion limit exceeded at line 1 column 294"),
    (b'[{"sid": "v1"}]', "is malformed: Input should be an object"),
    (b'{"sid": "v1", "record_sid": "r1", "number": 1, "created_at": 5, "data": {}}',
     "is malformed: created_at: Input should be a valid datetime"),
])
def test_a_malformed_version_document_is_refused_in_one_line(sessions, files, document, problem) -> None:  # type: ignore[no-untyped-def]
    data = ArchivePlan().version("v1", document).build()
    refused(sessions, files, data, f"version document '{ORG}/versions/v1.json' {problem}")


# --- 5: a restore killed at any point can be run again -----------------------------------------

class FailingMoves(FsspecStorage):
    """A files store whose moves fail: the crash between the commit and the promotion."""

    def move(self, source: str, target: str) -> None:
        raise OSError("disk unplugged")


def test_a_restore_dying_after_its_commit_is_finished_by_recovery(sessions, files, settings) -> None:  # type: ignore[no-untyped-def]
    data = ArchivePlan().file("u1", b"one").file("u2", b"two").build()
    failing = FailingMoves(settings.files_url)
    with pytest.raises(TransientError, match="was restored, but moving its files into place failed"):
        restore(sessions, failing, data)
    assert not files.exists(f"{ORG}/u1") and files.list(STAGING_PREFIX)
    with sessions() as session:
        assert session.scalar(select(RestoreRun.organization_sid)) == ORG
        recovered = recover_staging(session, files, stale_after=timedelta(hours=1))
    assert len(recovered.promoted) == 1 and not recovered.discarded
    for uid, expected in (("u1", b"one"), ("u2", b"two")):
        with files.open_read(f"{ORG}/{uid}") as blob:
            assert blob.read() == expected
    assert not files.list(STAGING_PREFIX)


KILLED_RESTORE = """
import sys, io
from labvault.db.engine import session_factory
from labvault.restore import restore_archive
from labvault.storage.folders import FsspecStorage
url, folder, path = sys.argv[1:]
with session_factory(url)() as session:
    restore_archive(lambda: open(path, "rb"), label="big", session=session, files_storage=FsspecStorage(folder))
"""


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_restore_killed_midway_can_be_run_again_without_clean_up(sessions, files, settings, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """SIGKILL while blobs are being staged; the next restore removes the dead run's staging
    (its process is gone) and succeeds."""
    plan = ArchivePlan()
    for number in range(12):
        plan.file(f"u{number}", os.urandom(8 * 1024 * 1024))
    path = tmp_path / "big.zip"
    path.write_bytes(plan.build())
    child = subprocess.Popen([sys.executable, "-c", KILLED_RESTORE, settings.database_url, settings.files_url,
                              str(path)], cwd=Path(__file__).parents[2])
    deadline = time.monotonic() + 60
    while not any(key.startswith(f"{STAGING_PREFIX}/") and "/blobs/" in key for key in files.list(STAGING_PREFIX)):
        assert child.poll() is None, "the restore ended before it could be killed"
        assert time.monotonic() < deadline
        time.sleep(0.01)
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    assert files.list(STAGING_PREFIX), "the killed restore left no staging: the test proves nothing"
    report = restore(sessions, files, path.read_bytes())
    assert report.files == 12
    assert not files.list(STAGING_PREFIX)
    with files.open_read(f"{ORG}/u3") as blob:
        assert hashlib.sha256(blob.read()).hexdigest() == plan.items[3][1]["sha256"]


class NearlyFull(FsspecStorage):
    def free_bytes(self) -> int | None:
        return 5


def test_files_the_target_cannot_hold_are_refused_before_any_write(sessions, files, settings) -> None:  # type: ignore[no-untyped-def]
    data = ArchivePlan().file("u1", b"one").file("u2", b"two, too long").build()
    refused(sessions, NearlyFull(settings.files_url), data,
            "archive hostile.zip holds 16 bytes of files; the target files store has 5 bytes free; "
            "nothing was restored")


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_on_s3_blobs_are_staged_then_moved_and_a_failure_leaves_no_upload(sessions, s3_bucket) -> None:  # type: ignore[no-untyped-def]
    from labvault.storage.s3 import S3Storage

    store = S3Storage(f"s3://{s3_bucket}/files", setting="test", part_size=5 * 1024 * 1024)
    big = os.urandom(11 * 1024 * 1024)  # three parts: a multipart upload under the staging prefix
    good = ArchivePlan().file("u1", big).file("u2", b"two").build()
    changed = bytearray(good)
    changed[len(good) // 3] ^= 1  # inside u1, found only while writing
    reads = iter([good, bytes(changed)])
    with pytest.raises(InvalidInputError, match="changed since it was verified"):
        restore(sessions, store, lambda: io.BytesIO(next(reads)))
    assert store.list() == [] and store.list_partials() == []
    report = restore(sessions, store, good)
    assert report.files == 2 and report.bytes == len(big) + 3
    assert store.list() == [f"{ORG}/u1", f"{ORG}/u2"]
    with store.open_read(f"{ORG}/u1") as blob:
        assert blob.read() == big


# --- neighbours: values a column cannot take --------------------------------------------------

def test_a_timestamp_out_of_range_in_utc_is_refused_in_one_line(sessions, files) -> None:  # type: ignore[no-untyped-def]
    data = ArchivePlan().file("u1", b"one", created_at="0001-01-01T00:00:00+14:00").build()
    refused(sessions, files, data, f"archive hostile.zip failed verification: manifest entry '{ORG}/u1_name.bin' "
            "is malformed: created_at: Value error, out of range once converted to UTC; nothing was restored")


def test_a_storage_key_with_a_control_character_is_refused(sessions, files) -> None:  # type: ignore[no-untyped-def]
    data = ArchivePlan().file("u1", b"one", storage_key=f"{ORG}/u1\x00.txt").build()
    refused(sessions, files, data, f"entry '{ORG}/u1_name.bin': storage key '{ORG}/u1\\x00.txt' is not a plain "
            "relative path; nothing was restored")


def test_a_value_the_database_cannot_store_is_refused_with_nothing_kept(sessions, files, database_url) -> None:  # type: ignore[no-untyped-def]
    """PostgreSQL text cannot hold NUL; SQLite can, so there the same archive restores."""
    data = ArchivePlan().file("u1", b"one").version("v1", version_document("v1", created_by="a\x00b")).build()
    if database_url.startswith("sqlite"):
        assert restore(sessions, files, data).versions == 1
        return
    before = target_digest(sessions, files)
    with pytest.raises(InvalidInputError) as caught:
        restore(sessions, files, data)
    assert str(caught.value).startswith("archive hostile.zip: the target database refused a row: ")
    assert str(caught.value).endswith("; nothing was restored") and "\n" not in str(caught.value)
    assert target_digest(sessions, files) == before
    assert not files.list(STAGING_PREFIX)


# --- found by a hostile review: keys that are folders, staging that vanishes -----------------

def test_a_key_under_a_file_of_the_target_is_refused_in_every_mode(sessions, files) -> None:  # type: ignore[no-untyped-def]
    restore(sessions, files, ArchivePlan().file("u1", b"one", storage_key=f"{ORG}/a").build())
    data = ArchivePlan().file("u2", b"two", storage_key=f"{ORG}/a/b").build()
    for merge in (None, MergePolicy.SKIP, MergePolicy.OVERWRITE):
        refused(sessions, files, data, f"entry '{ORG}/u2_name.bin': storage key '{ORG}/a/b' lies under "
                f"'{ORG}/a', a file in the target files store; nothing was restored", merge)


def test_a_key_that_is_a_folder_of_the_target_is_refused(sessions, files) -> None:  # type: ignore[no-untyped-def]
    restore(sessions, files, ArchivePlan().file("u1", b"one", storage_key=f"{ORG}/a/b").build())
    data = ArchivePlan().file("u2", b"two", storage_key=f"{ORG}/a").build()
    refused(sessions, files, data, f"entry '{ORG}/u2_name.bin': storage key '{ORG}/a' is a folder in the "
            "target files store; nothing was restored", MergePolicy.OVERWRITE)


@pytest.mark.parametrize(("first", "second", "message"), [
    (f"{ORG}/a/b", f"{ORG}/a", "storage key 'org-h/a' is a folder of another entry's key"),
    (f"{ORG}/a", f"{ORG}/a/b", "storage key 'org-h/a/b' lies under 'org-h/a', another entry's file"),
])
def test_one_entrys_file_as_anothers_folder_is_refused(sessions, files, first, second, message) -> None:  # type: ignore[no-untyped-def]
    data = ArchivePlan().file("u1", b"one", storage_key=first).file("u2", b"two", storage_key=second).build()
    refused(sessions, files, data, f"entry '{ORG}/u2_name.bin': {message}; nothing was restored")


def test_a_key_ending_in_partial_is_refused(sessions, files) -> None:  # type: ignore[no-untyped-def]
    data = ArchivePlan().file("u1", b"precious", storage_key=f"{ORG}/u1.partial").build()
    refused(sessions, files, data, f"entry '{ORG}/u1_name.bin': storage key '{ORG}/u1.partial' ends in "
            ".partial, which the files store keeps for unfinished writes; nothing was restored")


def test_a_version_document_over_the_limit_is_refused_before_anything_is_written(sessions, files) -> None:  # type: ignore[no-untyped-def]
    big = version_document("v1", data={"text": os.urandom(2 * 1024 * 1024 + 10).hex()})  # no bomb
    refused(sessions, files, ArchivePlan().version("v1", big).build(),
            f"version document '{ORG}/versions/v1.json' is {len(big)} bytes, over the 4194304 a version "
            "may have; nothing was restored")


def test_a_live_restore_on_this_host_keeps_its_staging_however_long_it_runs(sessions, files) -> None:  # type: ignore[no-untyped-def]
    from labvault.restore_staging import Staging
    from labvault.utc import utcnow

    live = Staging(files)
    live.begin()
    with sessions() as session:
        later = recover_staging(session, files, stale_after=timedelta(hours=1), now=utcnow() + timedelta(days=2))
    assert later.discarded == [] and live.intact()
    live.discard()


def test_a_restore_whose_staging_a_clean_up_removed_does_not_commit(sessions, files, settings) -> None:  # type: ignore[no-untyped-def]
    """Another host's clean-up took the staging (the marker first): the rows must not commit
    pointing at blobs that are gone."""
    from labvault.restore_staging import Staging

    class CleanedUp(FsspecStorage):
        def open_write(self, key: str, expected_size: int | None = None):  # type: ignore[no-untyped-def]
            if "/blobs/" in key and f"{ORG}/u2" in key:
                run = key.split("/")[1]
                Staging(self, run).discard()
            return super().open_write(key, expected_size)

    data = ArchivePlan().file("u1", b"one").file("u2", b"two").build()
    refused_store = CleanedUp(settings.files_url)
    before = target_digest(sessions, files)
    with pytest.raises(TransientError, match="a clean-up removed this restore's staging while it ran"):
        restore(sessions, refused_store, data)
    assert target_digest(sessions, files) == before


def test_a_staging_that_cannot_be_settled_does_not_stop_other_restores(sessions, files, settings) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(TransientError):
        restore(sessions, FailingMoves(settings.files_url), ArchivePlan().file("u1", b"one").build())
    with sessions() as session:
        stuck = recover_staging(session, FailingMoves(settings.files_url), stale_after=timedelta(hours=1))
    assert len(stuck.failed) == 1 and "disk unplugged" in stuck.failed[0]
    report = restore(sessions, files, ArchivePlan(org="org-z").file("z1", b"zz", storage_key="org-z/z1").build())
    assert report.files == 1
    assert files.is_file(f"{ORG}/u1"), "the next restore finished the committed run's move"


def test_a_commit_whose_reply_is_lost_keeps_its_staging_for_recovery(sessions, files, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """The database committed, then the connection failed before saying so: the staging must
    not be thrown away, or the committed rows would point at nothing."""
    from sqlalchemy.orm import Session as OrmSession

    commit = OrmSession.commit

    def commit_then_lose_the_reply(self):  # type: ignore[no-untyped-def]
        commit(self)
        if self.scalar(select(RestoreRun.id)) is not None and not getattr(self, "_lost", False):
            self._lost = True
            raise ConnectionResetError("server closed the connection")

    monkeypatch.setattr(OrmSession, "commit", commit_then_lose_the_reply)
    with pytest.raises(TransientError, match="the database's reply to its commit was lost"):
        restore(sessions, files, ArchivePlan().file("u1", b"one").build())
    monkeypatch.setattr(OrmSession, "commit", commit)
    with sessions() as session:
        recovered = recover_staging(session, files, stale_after=timedelta(hours=1))
    assert len(recovered.promoted) == 1
    with files.open_read(f"{ORG}/u1") as blob:
        assert blob.read() == b"one"
