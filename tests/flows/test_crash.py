"""A worker killed with SIGKILL halfway through copying files: the backup does not stay In
Progress, no partial archive is visible, and a retry completes it as a clean run would."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import zipfile
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from prefect.settings import PREFECT_API_URL
from sqlalchemy import select, update

from flows.expire_backups import expire_backups
from labvault.db.models import Backup, BackupStatus
from tests.archive_checks import read_manifest
from tests.cli.test_cli import labvault
from tests.cli.test_lifecycle_cli import create

ROOT = Path(__file__).parents[2]


@pytest.fixture(autouse=True)
def _no_slots(settings, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    """The harness's server is Prefect's in-process app, which runs no services: no lease
    repossessor would free the slot of a run these tests kill (as on the CLI's temporary
    server, where `auto` takes none). Slots with a killed worker: tests/e2e/test_topology.py."""
    monkeypatch.setenv("LABVAULT_BACKUP_SLOTS", "off")


def entries(path: str, organization_sid: str) -> set[tuple[str, int, str]]:
    with zipfile.ZipFile(path) as archive:
        return {(e["path"], e["size"], e["sha256"]) for e in read_manifest(archive, organization_sid)["entries"]}


def test_a_killed_worker_is_reaped_and_the_retry_completes_the_same_backup(sessions, files, backups_storage, organization, tmp_path) -> None:  # type: ignore[no-untyped-def]
    # The middle file (by uid, the copy order) is a FIFO: reading it blocks the worker mid-copy.
    row, data = sorted(organization.files.values(), key=lambda item: item[0].uid)[len(organization.files) // 2]
    blob = Path(files.url(row.storage_key))
    blob.unlink()
    os.mkfifo(blob)
    env = {**os.environ, "PREFECT_API_URL": PREFECT_API_URL.value()}
    code = ("from flows.create_backup import create_backup; create_backup(organization_sid='org-1', "
            f"name='Killed', requested_by='{organization.admin_email}')")
    with (tmp_path / "worker.log").open("wb") as log:
        worker = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, env=env, stdout=log,
                                  stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 120
        while not backups_storage.list():  # the partial archive appears once copying has begun
            assert worker.poll() is None and time.monotonic() < deadline, (tmp_path / "worker.log").read_text()
            time.sleep(0.2)
        time.sleep(1.0)  # it is now stuck on the FIFO, files before it copied
    finally:
        os.kill(worker.pid, signal.SIGKILL)
        worker.wait(timeout=30)

    with sessions() as session:
        [backup] = session.scalars(select(Backup)).all()
    assert backup.status is BackupStatus.IN_PROGRESS
    key = f"{organization.sid}/{backup.sid}.zip"
    assert not backups_storage.exists(key), "a partial archive is visible under the final name"

    # An hour and more passes without progress; the hourly expiry flow reaps the backup.
    two_hours_ago = datetime.now(timezone.utc) - timedelta(hours=2)
    with sessions.begin() as session:
        session.execute(update(Backup).values(heartbeat_at=two_hours_ago))
    for partial in backups_storage.list():
        os.utime(backups_storage.url(partial), (two_hours_ago.timestamp(),) * 2)
    report = expire_backups(stale_after_minutes=60)
    assert report["reaped"] == [backup.sid]
    assert report["orphans_removed"] == [key + ".partial"]
    assert backups_storage.list() == []
    with sessions() as session:
        reaped = session.get(Backup, backup.sid)
        assert reaped.status is BackupStatus.ERROR and reaped.error.startswith("stale: no progress since")

    blob.unlink()
    pending = files.open_write(row.storage_key)
    pending.write(data)
    pending.commit()
    retried = labvault("backup", "retry", backup.sid, "--as", organization.admin_email)
    assert retried.exit_code == 0, retried.output
    with sessions() as session:
        done = session.get(Backup, backup.sid)
        assert done.status is BackupStatus.COMPLETED

    clean = create(organization)
    assert entries(done.file_path, organization.sid) == entries(clean["file_path"], organization.sid)


def test_a_worker_killed_while_verifying_leaves_no_archive_once_reaped(sessions, backups_storage, organization, tmp_path) -> None:  # type: ignore[no-untyped-def]
    # The backups store stalls the read that verifies the sealed archive: the worker is killed
    # with the whole archive under its final name and the backup not yet Completed.
    verifying = tmp_path / "verifying"

    def heartbeat() -> datetime:
        with sessions() as session:
            return session.scalars(select(Backup.heartbeat_at)).one()

    env = {**os.environ, "PREFECT_API_URL": PREFECT_API_URL.value()}
    code = ("import pathlib, time\n"
            "from labvault.storage.folders import FsspecStorage\n"
            "read = FsspecStorage.open_read\n"
            "def stalled(self, key):\n"
            "    if key.endswith('.zip'):\n"
            f"        pathlib.Path({str(verifying)!r}).touch(); time.sleep(600)\n"
            "    return read(self, key)\n"
            "FsspecStorage.open_read = stalled\n"
            "from flows.create_backup import create_backup\n"
            f"create_backup(organization_sid='org-1', name='Killed', requested_by='{organization.admin_email}')\n")
    with (tmp_path / "worker.log").open("wb") as log:
        worker = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, env=env, stdout=log,
                                  stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 120
        while not verifying.exists():
            assert worker.poll() is None and time.monotonic() < deadline, (tmp_path / "worker.log").read_text()
            time.sleep(0.2)
        stalled_at = datetime.now(timezone.utc)
        while heartbeat() <= stalled_at:  # the stalled verification does not stop the heartbeat
            assert worker.poll() is None and time.monotonic() < deadline + 30, (tmp_path / "worker.log").read_text()
            time.sleep(0.5)
    finally:
        os.kill(worker.pid, signal.SIGKILL)
        worker.wait(timeout=30)

    with sessions() as session:
        [backup] = session.scalars(select(Backup)).all()
    key = f"{organization.sid}/{backup.sid}.zip"
    assert backup.status is BackupStatus.IN_PROGRESS and backups_storage.list() == [key]

    two_hours_ago = datetime.now(timezone.utc) - timedelta(hours=2)
    with sessions.begin() as session:
        session.execute(update(Backup).values(heartbeat_at=two_hours_ago))
    report = expire_backups(stale_after_minutes=60)
    assert backups_storage.list() == [], "the archive of a backup that never completed is visible"
    assert report["reaped"] == [backup.sid] and report["failed_archives_removed"] == [key]
    with sessions() as session:
        reaped = session.get(Backup, backup.sid)
        assert reaped.status is BackupStatus.ERROR and reaped.error.startswith("stale: no progress since")
    assert expire_backups(stale_after_minutes=60) == {
        "deleted": [], "kept": [], "reaped": [], "failed_archives_removed": [], "orphans_removed": [], "restores_settled": []}
