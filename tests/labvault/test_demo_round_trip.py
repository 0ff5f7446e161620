"""The demo organization, backed up, restored into an empty SQLite database and folder, and
backed up again: the second archive holds the same entries, byte for byte."""

from __future__ import annotations

import zipfile
from pathlib import Path

from labvault.db.engine import session_factory, upgrade_schema
from labvault.db.models import User
from labvault.demo import DEMO_ADMIN_EMAIL, DEMO_ORGANIZATION_SID, load_demo
from labvault.restore import restore_archive
from labvault.storage.folders import FsspecStorage
from tests.archive_checks import read_manifest
from tests.labvault.test_backups import BackupRequest, run_backup


def manifest_entries(path: str) -> set[tuple[str, int, str]]:
    with zipfile.ZipFile(path) as archive:
        manifest = read_manifest(archive, DEMO_ORGANIZATION_SID)
    return {(e["path"], e["size"], e["sha256"]) for e in manifest["entries"]}


def test_the_demo_organization_survives_backup_restore_backup(sessions, files, backups_storage, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    with sessions() as session:
        load_demo(session, files)
    request = BackupRequest(DEMO_ORGANIZATION_SID, "Before", "", DEMO_ADMIN_EMAIL)
    first = backups_storage.url(f"{DEMO_ORGANIZATION_SID}/{run_backup(sessions, files, backups_storage, request)}.zip")

    target_url = f"sqlite:///{tmp_path / 'restored.db'}"
    upgrade_schema(target_url)
    target_files = FsspecStorage(str(tmp_path / "restored-files"))
    with session_factory(target_url)() as session:
        report = restore_archive(lambda: Path(first).open("rb"), label="demo", session=session,
                                 files_storage=target_files)
        assert (report.versions, report.files, report.records) == (300, 40, 50)
        session.add(User(organization_sid=DEMO_ORGANIZATION_SID, email=DEMO_ADMIN_EMAIL, is_admin=True))
        session.commit()

    again = FsspecStorage(str(tmp_path / "second-backups"))
    second_sid = run_backup(session_factory(target_url), target_files, again, request)
    second = again.url(f"{DEMO_ORGANIZATION_SID}/{second_sid}.zip")
    assert manifest_entries(first) == manifest_entries(second)
    assert len(manifest_entries(first)) == 340
