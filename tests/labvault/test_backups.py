"""The backup service end to end without Prefect: the domain can be used on its own."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from decimal import Decimal
from functools import partial
from pathlib import Path

import pytest
from sqlalchemy import func, select

from labvault import backups, catalog, object_lock
from labvault.backups import BackupRequest, ProgressRecorder
from labvault.db.models import Backup, BackupStatus, File, Version
from labvault.errors import (
    ConflictError,
    InvalidInputError,
    MissingBlobError,
    NotFoundError,
    PermissionDeniedError,
)
from labvault.liveness import BEAT_SECONDS, Heartbeat
from labvault.pricing import Pricing
from tests.archive_checks import assert_archive_matches
from tests.factories import make_organization

PRICING = Pricing(Decimal("0.10"), Decimal("0.02"), "USD", retention_days=30)


def run_backup(sessions, files, backups_storage, request: BackupRequest, *, listener=None,  # type: ignore[no-untyped-def]
               beat_every: float = BEAT_SECONDS, finished_at: datetime | None = None, **start) -> str:
    """The flow's steps, in order, as plain calls, under the backup's heartbeat; a `listener`
    hears every item's progress. The archive is locked as the finish task locks it (with
    LABVAULT_S3_OBJECT_LOCK), its backup completed at `finished_at` (default now)."""
    with sessions() as session:
        sid = backups.start_backup(session, request, **start)
    run_id = start.get("flow_run_id")
    progress = ProgressRecorder(sessions, sid, run_id=run_id, interval=0 if listener else 2.0,
                                listener=listener)
    with (Heartbeat(sessions, sid, run_id=run_id, interval=beat_every), sessions() as session,
          backups.open_archive(session, backups_storage, sid) as archive):
        backups.snapshot_versions(session, sid, archive, progress)
        backups.copy_files(session, sid, files, archive, progress)
        sealed = archive.seal()
        backups.verify_stored_archive(backups_storage, sealed.key)
        backups.finish_backup(session, sid, sealed, run_id=run_id,
                              file_path=backups_storage.url(sealed.key), pricing=PRICING,
                              now=finished_at, lock=partial(object_lock.lock_archive, backups_storage, sealed.key))
    return sid


def request_for(organization, **changes) -> BackupRequest:  # type: ignore[no-untyped-def]
    values = {"organization_sid": organization.sid, "name": "Nightly", "description": "",
              "requested_by": organization.admin_email, **changes}
    return BackupRequest(**values)


def test_a_backup_holds_every_version_and_file(sessions, files, backups_storage, organization) -> None:  # type: ignore[no-untyped-def]
    sid = run_backup(sessions, files, backups_storage, request_for(organization))
    with sessions() as session:
        backup = session.get(Backup, sid)
    assert backup.status is BackupStatus.COMPLETED
    assert backup.file_path == backups_storage.url(f"{organization.sid}/{sid}.zip")
    assert backup.date_expired == backup.date_completed + timedelta(days=30)
    assert backup.progress_done == backup.progress_total == 14
    assert_archive_matches(Path(backup.file_path), organization, backup)


def test_versions_and_files_added_after_the_start_are_not_in_it(sessions, files, backups_storage, organization) -> None:  # type: ignore[no-untyped-def]
    with sessions() as session:
        sid = backups.start_backup(session, request_for(organization),
                                   now=datetime(2026, 4, 1, tzinfo=timezone.utc))
        later = datetime(2026, 4, 2, tzinfo=timezone.utc)
        version = next(iter(organization.versions.values()))
        session.add(Version(sid="late-v", record_sid=version.record_sid,
                            organization_sid=organization.sid, number=99, data={},
                            created_at=later))
        session.add(File(uid="late-f", organization_sid=organization.sid, name="late.txt",
                         size=0, storage_key="nowhere", created_at=later))
        session.commit()
    progress = ProgressRecorder(sessions, sid)
    with sessions() as session, backups.open_archive(session, backups_storage, sid) as archive:
        assert backups.snapshot_versions(session, sid, archive, progress) == len(organization.versions)
        assert backups.copy_files(session, sid, files, archive, progress) == len(organization.files)
        archive.abort()


def test_a_missing_blob_names_the_file_and_leaves_no_archive(sessions, files, backups_storage, organization) -> None:  # type: ignore[no-untyped-def]
    row, _ = next(iter(organization.files.values()))
    files.delete(row.storage_key)
    with pytest.raises(MissingBlobError) as caught:
        run_backup(sessions, files, backups_storage, request_for(organization))
    assert str(caught.value) == f"file {row.uid} ({row.name}) is missing from the files store"
    assert backups_storage.list() == []


@pytest.mark.parametrize(
    ("changes", "error", "message"),
    [
        ({"organization_sid": "nope"}, NotFoundError, "organization 'nope' does not exist"),
        ({"organization_sid": "x' OR '1'='1"}, NotFoundError, "does not exist"),
        ({"requested_by": "member@org-1.example"}, PermissionDeniedError, "is not an admin"),
        ({"requested_by": "stranger@elsewhere.example"}, PermissionDeniedError, "is not an admin"),
        ({"requested_by": "admin@org-2.example"}, PermissionDeniedError, "is not an admin"),
        ({"name": ""}, InvalidInputError, "backup name is empty"),
        ({"name": "   \t "}, InvalidInputError, "backup name is empty"),
        ({"name": "x" * 256}, InvalidInputError, "256 characters; the limit is 255"),
        ({"name": "bell\x07"}, InvalidInputError, "control or invisible formatting characters"),
        ({"name": "rtl\u200f mark"}, InvalidInputError, "right-to-left marks"),
        ({"description": "d" * 5001}, InvalidInputError, "the limit is 5000"),
    ],
)
def test_a_bad_request_is_refused_and_writes_nothing(sessions, files, organization, changes, error, message) -> None:  # type: ignore[no-untyped-def]
    with sessions() as session:
        make_organization(session, files, sid="org-2", file_names=[])
    with sessions() as session, pytest.raises(error, match=message):
        backups.start_backup(session, request_for(organization, **changes))
    with sessions() as session:
        assert session.scalar(select(func.count()).select_from(Backup)) == 0


def test_admin_email_matches_case_insensitively_and_names_are_trimmed(sessions, organization) -> None:  # type: ignore[no-untyped-def]
    request = request_for(organization, requested_by=organization.admin_email.upper(), name="  Q1 ")
    with sessions() as session:
        backup = session.get(Backup, backups.start_backup(session, request))
        assert backup.name == "Q1"
        assert backup.status is BackupStatus.IN_PROGRESS


def test_starting_again_under_the_same_flow_run_continues_the_same_backup(sessions, organization) -> None:  # type: ignore[no-untyped-def]
    with sessions() as session:
        first = backups.start_backup(session, request_for(organization), flow_run_id="run-1")
        assert backups.fail_backup(session, first, "boom")
        again = backups.start_backup(session, request_for(organization), flow_run_id="run-1")
        assert again == first
        backup = session.get(Backup, first)
        session.refresh(backup)
        assert (backup.status, backup.error) == (BackupStatus.IN_PROGRESS, None)


def test_fail_backup_leaves_a_completed_backup_alone(sessions, files, backups_storage, organization) -> None:  # type: ignore[no-untyped-def]
    sid = run_backup(sessions, files, backups_storage, request_for(organization))
    with sessions() as session:
        assert not backups.fail_backup(session, sid, "late failure")
        assert session.get(Backup, sid).status is BackupStatus.COMPLETED


def test_list_is_newest_first_and_unknown_sid_is_not_found(sessions, organization) -> None:  # type: ignore[no-untyped-def]
    with sessions() as session:
        older = backups.start_backup(session, request_for(organization),
                                     now=datetime(2026, 1, 1, tzinfo=timezone.utc))
        backups.fail_backup(session, older, "boom")
        newer = backups.start_backup(session, request_for(organization),
                                     now=datetime(2026, 2, 1, tzinfo=timezone.utc))
        assert [b.sid for b in catalog.list_backups(session)] == [newer, older]
        with pytest.raises(NotFoundError, match="backup 'bk-nope' does not exist"):
            catalog.get_backup(session, "bk-nope")


def test_progress_is_recorded_on_the_row_with_a_heartbeat_as_work_goes(sessions, files, backups_storage, organization) -> None:  # type: ignore[no-untyped-def]
    with sessions() as session:
        sid = backups.start_backup(session, request_for(organization),
                                   now=datetime(2026, 4, 1, tzinfo=timezone.utc))
    seen: list[tuple[int, int, datetime]] = []

    def listener(done: int, total: int) -> None:
        with sessions() as session:
            row = session.get(Backup, sid)
            seen.append((row.progress_done, row.progress_total, row.heartbeat_at))

    progress = ProgressRecorder(sessions, sid, interval=0, listener=listener)
    with sessions() as session, backups.open_archive(session, backups_storage, sid) as archive:
        backups.snapshot_versions(session, sid, archive, progress)
        backups.copy_files(session, sid, files, archive, progress)
        archive.abort()
    done = [entry[0] for entry in seen]
    assert done[0] == 1 and done[-1] == 14 and done == sorted(done)
    assert {entry[1] for entry in seen} == {14}
    assert all(entry[2] > datetime(2026, 4, 1, tzinfo=timezone.utc) for entry in seen)


def test_versions_written_while_the_snapshot_streams_are_left_out(sessions, files, backups_storage, organization) -> None:  # type: ignore[no-untyped-def]
    """Another writer inserts a version each time the backup reports progress."""
    record_sid = next(iter(organization.versions.values())).record_sid
    inserted: list[str] = []

    def insert_a_version(done: int, total: int) -> None:
        with sessions.begin() as session:
            sid = f"concurrent-{len(inserted)}"
            session.add(Version(sid=sid, record_sid=record_sid, organization_sid=organization.sid,
                                number=100 + len(inserted), data={"late": True},
                                created_at=datetime.now(timezone.utc)))
            inserted.append(sid)

    with sessions() as session:
        sid = backups.start_backup(session, request_for(organization))
    progress = ProgressRecorder(sessions, sid, interval=0, listener=insert_a_version)
    with sessions() as session, backups.open_archive(session, backups_storage, sid) as archive:
        backups.snapshot_versions(session, sid, archive, progress)
        backups.copy_files(session, sid, files, archive, progress)
        sealed = archive.seal()
        backups.finish_backup(session, sid, sealed, run_id=None, file_path=backups_storage.url(sealed.key),
                              pricing=PRICING)
        backup = session.get(Backup, sid)
    assert len(inserted) >= len(organization.versions)
    assert_archive_matches(Path(backups_storage.url(sealed.key)), organization, backup)


def test_a_second_running_backup_of_an_organization_is_refused(sessions, files, organization) -> None:  # type: ignore[no-untyped-def]
    with sessions() as session:
        running = backups.start_backup(session, request_for(organization))
        make_organization(session, files, sid="org-2", file_names=[])
        other_org = backups.start_backup(session, request_for(organization, organization_sid="org-2",
                                                              requested_by="admin@org-2.example"))
        with pytest.raises(ConflictError, match=f"organization 'org-1' already has backup {running} in progress"):
            backups.start_backup(session, request_for(organization))
        backups.fail_backup(session, running, "boom")
        after = backups.start_backup(session, request_for(organization))
    assert len({running, other_org, after}) == 3


def test_two_starts_racing_leave_exactly_one_running(sessions, organization, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """The check and the insert are apart; the database's unique index settles the race."""
    import threading

    barrier = threading.Barrier(2)
    checks: list[int] = []
    check = backups._refuse_a_second_running_backup

    def check_then_wait(*args):  # type: ignore[no-untyped-def]
        check(*args)
        checks.append(1)
        if len(checks) <= 2:
            barrier.wait(timeout=10)  # both have passed the check before either inserts

    monkeypatch.setattr(backups, "_refuse_a_second_running_backup", check_then_wait)
    outcomes: list[str] = []

    def start() -> None:
        with sessions() as session:
            try:
                outcomes.append(backups.start_backup(session, request_for(organization)))
            except ConflictError as exc:
                outcomes.append(str(exc))

    threads = [threading.Thread(target=start) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    started = [o for o in outcomes if o.startswith("bk-")]
    refused = [o for o in outcomes if "already has backup" in o]
    assert len(started) == 1 and len(refused) == 1, outcomes
    with sessions() as session:
        statuses = session.scalars(select(Backup.status)).all()
    assert statuses == [BackupStatus.IN_PROGRESS]


def test_the_listener_hears_each_step_against_its_own_total(sessions, files, backups_storage, organization) -> None:  # type: ignore[no-untyped-def]
    """Versions then files (this helper's order), each counted from 1 to its own total."""
    heard: list[tuple[int, int]] = []
    run_backup(sessions, files, backups_storage, request_for(organization),
               listener=lambda done, total: heard.append((done, total)))
    versions, file_count = len(organization.versions), len(organization.files)
    assert list(dict.fromkeys(heard)) == ([(n, versions) for n in range(1, versions + 1)]
                                          + [(n, file_count) for n in range(1, file_count + 1)])
