"""Bad input through the flows (the Prefect UI's door): the run fails, no backup row, no archive;
and awkward file names are made safe (a documented transformation), never refused."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest
from sqlalchemy import func, select

from labvault.archive.safe_names import MAX_NAME_BYTES
from labvault.db.models import Backup
from tests.archive_checks import read_manifest
from tests.factories import make_organization
from tests.flows.test_create_backup import backup_of, run


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"name": ""}, "name"),
        ({"name": "x" * 10_000}, "name"),
        ({"description": "d" * 10_000}, "description"),
        ({"retention_days": -1}, "retention_days"),
        ({"retention_days": 100_000}, "retention_days"),
        ({"organization_sid": "x' OR '1'='1"}, "does not exist"),
        ({"requested_by": "member@org-1.example"}, "is not an admin"),
        ({"name": "tab\u202eevil"}, "right-to-left marks"),
    ],
)
def test_a_bad_parameter_fails_the_run_with_no_backup(sessions, backups_storage, organization, changes, message) -> None:  # type: ignore[no-untyped-def]
    state = run(organization, **changes)
    assert state.is_failed()
    assert message in state.message
    with sessions() as session:
        assert session.scalar(select(func.count()).select_from(Backup)) == 0
    assert backups_storage.list() == []


AWKWARD = ["", ".", "..", "/etc/passwd", "é" * 1000, "a/b.txt", "a_b.txt", "a\\b.txt"]


def test_awkward_file_names_become_safe_unique_entries(sessions, files) -> None:  # type: ignore[no-untyped-def]
    with sessions() as session:
        organization = make_organization(session, files, sid="org-w", file_names=AWKWARD)
    state = run(organization)
    assert state.is_completed(), state.message
    backup = backup_of(sessions, state)
    with zipfile.ZipFile(Path(backup.file_path)) as archive:
        names = archive.namelist()
        manifest = read_manifest(archive, organization.sid)
    file_entries = [e for e in manifest["entries"] if e["kind"] == "file"]
    assert sorted(e["original_name"] for e in file_entries) == sorted(AWKWARD)
    assert len(set(names)) == len(names)  # "a/b.txt", "a_b.txt" and "a\\b.txt" stay apart
    for entry in file_entries:
        leaf = entry["path"].split("/", 1)[1]
        assert "/" not in leaf and ".." not in leaf and "\\" not in leaf
        assert len(leaf.encode()) <= MAX_NAME_BYTES + 40
