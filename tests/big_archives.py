"""The costly archives, made by real backups once per session and shared by the tests that read
them (`big_archives` in conftest): the demo's, one of 70,001 entries, one over 4 GiB.

Each is backed up (and so verified, as every backup is) on a SQLite database and stores of its
own; the file over 4 GiB is sparse at the source, so it costs no disk there."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

from sqlalchemy import insert

from labvault.backups import BackupRequest
from labvault.db.engine import session_factory, upgrade_schema
from labvault.db.models import File
from labvault.demo import DEMO_ADMIN_EMAIL, DEMO_ORGANIZATION_SID, load_demo
from labvault.storage.folders import FsspecStorage
from tests.factories import make_organization
from tests.labvault.test_backups import run_backup

MANY_FILES = 70_000
HUGE_FILE_BYTES = 4 * 1024**3 + 123_457
UPLOADED = datetime(2026, 1, 1, tzinfo=timezone.utc)


def _backed_up(folder: Path, organization_sid: str, fill) -> Path:  # type: ignore[no-untyped-def]
    """`fill(session, files)` loads the organization; the archive its backup wrote."""
    url = f"sqlite:///{folder / 'labvault.db'}"
    upgrade_schema(url)
    sessions = session_factory(url)
    files, backups = FsspecStorage(str(folder / "files")), FsspecStorage(str(folder / "backups"))
    with sessions() as session:
        admin = fill(session, files)
    sid = run_backup(sessions, files, backups, BackupRequest(organization_sid, "Nightly", "", admin))
    return Path(backups.url(f"{organization_sid}/{sid}.zip"))


def demo_archive(folder: Path) -> Path:
    def fill(session, files):  # type: ignore[no-untyped-def]
        load_demo(session, files)
        return DEMO_ADMIN_EMAIL
    return _backed_up(folder, DEMO_ORGANIZATION_SID, fill)


def many_files_archive(folder: Path) -> Path:
    """70,000 files (one shared blob) and the factory's versions: past 65,535 entries."""
    def fill(session, files):  # type: ignore[no-untyped-def]
        organization = make_organization(session, files, sid="org-many", file_names=[])
        shared = files.open_write("org-many/shared-blob")
        shared.write(b"the same small blob, stored once at the source")
        shared.commit()
        session.execute(insert(File), [
            {"uid": f"u{index:06d}", "organization_sid": "org-many", "name": f"sample {index}.txt",
             "size": 46, "storage_key": "org-many/shared-blob", "created_at": UPLOADED}
            for index in range(MANY_FILES)
        ])
        session.commit()
        return organization.admin_email
    return _backed_up(folder, "org-many", fill)


def huge_file_archive(folder: Path) -> Path:
    """A file of 4 GiB + 123,457 bytes (ZIP64 sizes, a 24-byte data descriptor) among the
    factory's versions; the manifest after it lies past 4 GiB (ZIP64 in its central record only)."""
    def fill(session, files):  # type: ignore[no-untyped-def]
        organization = make_organization(session, files, sid="org-big", file_names=[])
        sparse = Path(files.url("org-big/huge"))
        sparse.parent.mkdir(parents=True, exist_ok=True)
        with sparse.open("wb") as blob:
            blob.truncate(HUGE_FILE_BYTES)  # a hole: no blocks on disk
        session.add(File(uid="huge", organization_sid="org-big", name="scan.raw", size=HUGE_FILE_BYTES,
                         storage_key="org-big/huge", created_at=UPLOADED))
        session.commit()
        return organization.admin_email
    return _backed_up(folder, "org-big", fill)


MAKERS = {"demo": demo_archive, "70001 entries": many_files_archive, "over 4 GiB": huge_file_archive}
