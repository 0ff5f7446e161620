"""ZIP64 for real: 70,000 entries in one archive, and a file over 4 GiB (sparse at the source,
so it costs no disk there), backed up and verified."""

from __future__ import annotations

import os
import zipfile
from datetime import datetime, timezone
from pathlib import Path

import pytest
from sqlalchemy import insert

from labvault.models import File
from labvault.verify import verify_archive
from tests.factories import make_organization
from tests.labvault.test_backups import request_for, run_backup

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
ZIP64_END_OF_CENTRAL_DIRECTORY = b"PK\x06\x06"


def verified(path: Path) -> None:
    with path.open("rb") as source:
        report = verify_archive(source, label=str(path))
    assert report.ok, report.problems[:5]


def test_seventy_thousand_files(sessions, files, backups_storage) -> None:  # type: ignore[no-untyped-def]
    with sessions() as session:
        organization = make_organization(session, files, sid="org-many", file_names=[])
        shared = files.open_write("org-many/shared-blob")
        shared.write(b"the same small blob, stored once at the source")
        shared.commit()
        created = datetime(2026, 1, 1, tzinfo=timezone.utc)
        session.execute(insert(File), [
            {"uid": f"u{index:06d}", "organization_sid": "org-many", "name": f"sample {index}.txt",
             "size": 46, "storage_key": "org-many/shared-blob", "created_at": created}
            for index in range(70_000)
        ])
        session.commit()
    sid = run_backup(sessions, files, backups_storage, request_for(organization))
    path = Path(backups_storage.url(f"org-many/{sid}.zip"))
    with zipfile.ZipFile(path) as archive:
        assert len(archive.infolist()) == 70_000 + len(organization.versions) + 1
    with path.open("rb") as raw:
        raw.seek(-200, os.SEEK_END)
        assert ZIP64_END_OF_CENTRAL_DIRECTORY in raw.read(), "more than 65,535 entries needs ZIP64"
    verified(path)


def test_a_file_over_four_gib(sessions, files, backups_storage) -> None:  # type: ignore[no-untyped-def]
    size = 4 * 1024**3 + 123_457
    with sessions() as session:
        organization = make_organization(session, files, sid="org-big", file_names=[])
        sparse = Path(files.url("org-big/huge"))
        sparse.parent.mkdir(parents=True, exist_ok=True)
        with sparse.open("wb") as blob:
            blob.truncate(size)  # a hole: no blocks on disk
        session.add(File(uid="huge", organization_sid="org-big", name="scan.raw", size=size,
                         storage_key="org-big/huge", created_at=datetime(2026, 1, 1, tzinfo=timezone.utc)))
        session.commit()
    sid = run_backup(sessions, files, backups_storage, request_for(organization))
    path = Path(backups_storage.url(f"org-big/{sid}.zip"))
    try:
        with zipfile.ZipFile(path) as archive:
            assert archive.getinfo("org-big/huge_scan.raw").file_size == size
        verified(path)
    finally:
        path.unlink(missing_ok=True)
