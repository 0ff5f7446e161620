"""Reliability on a bad day: data changing underneath a backup, races between runs."""

from __future__ import annotations

import threading
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from sqlalchemy import select

from labvault import deletion, expiry
from labvault.errors import MissingBlobError
from labvault.models import Backup, BackupStatus, File, Version
from tests.archive_checks import assert_archive_matches
from tests.factories import make_organization
from tests.labvault.test_backups import request_for, run_backup


def run_with_writer(sessions, files, backups_storage, organization, writer) -> str:  # type: ignore[no-untyped-def]
    """A backup whose progress reports give another writer a turn while it streams."""
    return run_backup(sessions, files, backups_storage, request_for(organization),
                      listener=lambda done, total: writer(done))


def test_files_and_versions_added_while_it_runs_are_left_out(sessions, files, backups_storage, organization) -> None:  # type: ignore[no-untyped-def]
    record_sid = next(iter(organization.versions.values())).record_sid
    turns = iter(range(1000))

    def add_more(_: int) -> None:
        done = next(turns)
        now = datetime.now(timezone.utc)
        pending = files.open_write(f"org-1/late-{done}")
        pending.write(b"late bytes")
        pending.commit()
        with sessions.begin() as session:
            session.add(File(uid=f"late-{done}", organization_sid="org-1", record_sid=record_sid,
                             name="late.txt", size=10, storage_key=f"org-1/late-{done}", created_at=now))
            session.add(Version(sid=f"late-v-{done}", record_sid=record_sid, organization_sid="org-1",
                                number=1000 + done, data={}, created_at=now))

    sid = run_with_writer(sessions, files, backups_storage, organization, add_more)
    with sessions() as session:
        backup = session.get(Backup, sid)
    assert_archive_matches(Path(backup.file_path), organization, backup)


def test_a_file_deleted_while_it_runs_ends_in_error_naming_it(sessions, files, backups_storage, organization) -> None:  # type: ignore[no-untyped-def]
    last, _ = sorted(organization.files.values(), key=lambda item: item[0].uid)[-1]

    def delete_the_last_file(done: int) -> None:
        files.delete(last.storage_key)

    with pytest.raises(MissingBlobError, match=f"file {last.uid} .* is missing from the files store"):
        run_with_writer(sessions, files, backups_storage, organization, delete_the_last_file)
    assert backups_storage.list() == []


def test_backups_of_two_organizations_run_in_parallel_without_interfering(sessions, files, backups_storage, organization) -> None:  # type: ignore[no-untyped-def]
    with sessions() as session:
        other = make_organization(session, files, sid="org-2", seed=2)
    results: dict[str, str] = {}
    errors: list[BaseException] = []

    def back_up(org) -> None:  # type: ignore[no-untyped-def]
        try:
            results[org.sid] = run_backup(sessions, files, backups_storage, request_for(org))
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=back_up, args=(org,)) for org in (organization, other)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert errors == []
    with sessions() as session:
        for org in (organization, other):
            backup = session.get(Backup, results[org.sid])
            assert backup.status is BackupStatus.COMPLETED
            assert_archive_matches(Path(backup.file_path), org, backup)


def test_a_delete_racing_an_expiry_removes_the_backup_once_without_error(sessions, files, backups_storage, organization) -> None:  # type: ignore[no-untyped-def]
    sid = run_backup(sessions, files, backups_storage, request_for(organization))
    with sessions() as session:
        session.get(Backup, sid).date_expired = datetime.now(timezone.utc) - timedelta(minutes=1)
        session.commit()
    barrier = threading.Barrier(2)
    outcomes: dict[str, object] = {}

    def delete() -> None:
        with sessions() as session:
            barrier.wait(timeout=10)
            try:
                outcomes["delete"] = deletion.delete_backup(session, backups_storage, sid,
                                                            organization.admin_email).sid
            except Exception as exc:  # a NotFound here is acceptable only if expiry won first
                outcomes["delete"] = exc

    def expire() -> None:
        with sessions() as session:
            barrier.wait(timeout=10)
            try:
                outcomes["expire"] = expiry.expire_backups(session, backups_storage,
                                                           stale_after=timedelta(hours=1)).deleted
            except Exception as exc:  # must not happen: the scheduled run would fail
                outcomes["expire"] = exc

    threads = [threading.Thread(target=delete), threading.Thread(target=expire)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not isinstance(outcomes["expire"], Exception), outcomes
    assert not isinstance(outcomes["delete"], Exception) or outcomes["expire"] == [sid], outcomes
    assert backups_storage.list() == []
    with sessions() as session:
        backup = session.get(Backup, sid)
        assert backup.date_deleted is not None
        assert session.scalars(select(Backup).where(Backup.date_deleted.is_(None))).all() == []
