"""Reliability on a bad day: data changing underneath a backup, races between runs."""

from __future__ import annotations

import threading
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from sqlalchemy import select

from labvault import backups, deletion, expiry
from labvault.db.models import Backup, BackupStatus, File, Version
from labvault.errors import ConflictError, MissingBlobError, PermanentError
from labvault.liveness import Heartbeat
from tests.archive_checks import assert_archive_matches
from tests.factories import make_organization
from tests.labvault.test_backups import PRICING, request_for, run_backup


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


class SlowReads:
    """A files store whose blob `slow_key` takes `delay` seconds per read: a large object on a
    slow store, copying for longer than the stale window."""

    def __init__(self, store, slow_key: str, delay: float) -> None:  # type: ignore[no-untyped-def]
        self._store = store
        self._slow_key = slow_key
        self._delay = delay

    def open_stream(self, key: str):  # type: ignore[no-untyped-def]
        source = self._store.open_stream(key)
        if key != self._slow_key:
            return source
        real_read = source.read

        def read(size: int = -1) -> bytes:
            time.sleep(self._delay)
            return real_read(size)

        source.read = read
        return source

    def __getattr__(self, name: str):  # type: ignore[no-untyped-def]
        return getattr(self._store, name)


def test_a_backup_slower_than_the_stale_window_is_neither_reaped_nor_doubled(sessions, files, backups_storage, organization) -> None:  # type: ignore[no-untyped-def]
    """One file takes three stale windows to copy while expiry runs again and again and a second
    backup of the organization is asked for: the first ends Completed, whole."""
    window = timedelta(seconds=1)
    row, _ = sorted(organization.files.values(), key=lambda item: item[0].uid)[0]
    slow = SlowReads(files, row.storage_key, delay=1.5)
    finished = threading.Event()
    reports: list[expiry.ExpiryReport] = []
    second_start: list[object] = []

    def expire_meanwhile() -> None:
        started = time.monotonic()
        while not finished.is_set():
            with sessions() as session:
                reports.append(expiry.expire_backups(session, backups_storage, stale_after=window))
                if not second_start and time.monotonic() - started > 2 * window.total_seconds():
                    try:
                        second_start.append(backups.start_backup(session, request_for(organization)))
                    except ConflictError as exc:
                        second_start.append(exc)
            time.sleep(0.1)

    reaper = threading.Thread(target=expire_meanwhile)
    reaper.start()
    try:
        sid = run_backup(sessions, slow, backups_storage, request_for(organization), flow_run_id="run-1",
                         beat_every=0.2)
    finally:
        finished.set()
        reaper.join(timeout=60)
    assert len(reports) > 10 and all(report.did_nothing for report in reports), reports
    [refused] = second_start
    assert isinstance(refused, ConflictError) and f"already has backup {sid} in progress" in str(refused)
    with sessions() as session:
        backup = session.get(Backup, sid)
    assert backup.status is BackupStatus.COMPLETED
    assert_archive_matches(Path(backup.file_path), organization, backup)


def test_only_the_run_holding_a_backup_can_complete_it(sessions, backups_storage, organization) -> None:  # type: ignore[no-untyped-def]
    with sessions() as session:
        sid = backups.start_backup(session, request_for(organization), flow_run_id="run-1")
        with backups.open_archive(session, backups_storage, sid) as archive:
            sealed = archive.seal()
        url = backups_storage.url(sealed.key)
        backups.fail_backup(session, sid, "stale: no progress since 2026-01-01T00:00:00+00:00")
        with pytest.raises(PermanentError) as reaped:
            backups.finish_backup(session, sid, sealed, run_id="run-1", file_path=url, pricing=PRICING)
        assert str(reaped.value) == (f"backup {sid} is Error (stale: no progress since 2026-01-01T00:00:00+00:00) "
                                     "and no longer held by this run; it was not marked Completed")
        backups.restart_backup(session, sid, organization.admin_email, flow_run_id="run-2")
        with pytest.raises(PermanentError) as taken_over:
            backups.finish_backup(session, sid, sealed, run_id="run-1", file_path=url, pricing=PRICING)
        assert str(taken_over.value) == (f"backup {sid} is In Progress and no longer held by this run; "
                                         "it was not marked Completed")
        assert session.get(Backup, sid).status is BackupStatus.IN_PROGRESS
        done = backups.finish_backup(session, sid, sealed, run_id="run-2", file_path=url, pricing=PRICING)
        assert (done.status, done.flow_run_id, done.file_path) == (BackupStatus.COMPLETED, "run-2", url)
        completed_at = done.date_completed
        # the task retried after a failure past its commit finds the backup completed by its run
        again = backups.finish_backup(session, sid, sealed, run_id="run-2", file_path=url, pricing=PRICING)
        assert (again.status, again.date_completed) == (BackupStatus.COMPLETED, completed_at)
        with pytest.raises(PermanentError, match=f"backup {sid} is Completed and no longer held by this run"):
            backups.finish_backup(session, sid, sealed, run_id="run-1", file_path=url, pricing=PRICING)


def test_the_heartbeat_beats_while_work_runs_and_never_revives_a_reaped_backup(sessions, organization) -> None:  # type: ignore[no-untyped-def]
    long_ago = datetime.now(timezone.utc) - timedelta(hours=1)
    with sessions() as session:
        sid = backups.start_backup(session, request_for(organization), flow_run_id="run-1", now=long_ago)

    def last_beat() -> datetime:
        with sessions() as session:
            return session.get(Backup, sid).heartbeat_at

    with Heartbeat(sessions, sid, run_id="run-1", interval=0.05):
        time.sleep(0.3)
        assert last_beat() > long_ago + timedelta(minutes=59)
        with sessions() as session:
            backups.fail_backup(session, sid, "stale: reaped")
        reaped_at = last_beat()
        time.sleep(0.3)
        assert last_beat() == reaped_at
    with sessions() as session:
        assert session.get(Backup, sid).status is BackupStatus.ERROR
