"""`labvault backup verify` and `labvault restore` as a user runs them."""

from __future__ import annotations

import json
from pathlib import Path

from sqlalchemy import func, select

from labvault.database import session_factory
from labvault.models import File, Version
from tests.cli.test_cli import labvault
from tests.cli.test_lifecycle_cli import create


def test_verify_by_sid_and_by_path_and_a_damaged_copy(organization, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    created = create(organization)
    by_sid = labvault("backup", "verify", created["sid"], "--json")
    assert by_sid.exit_code == 0, by_sid.output
    report = json.loads(by_sid.stdout)
    assert report["ok"] and report["files"] == len(organization.files)
    by_path = labvault("backup", "verify", created["file_path"])
    assert by_path.exit_code == 0 and "every entry matches the manifest" in by_path.stdout

    damaged = tmp_path / "damaged.zip"
    damaged.write_bytes(Path(created["file_path"]).read_bytes()[:-100])
    bad = labvault("backup", "verify", str(damaged))
    assert bad.exit_code == 1
    assert bad.stderr.startswith("error: not a readable zip archive")
    missing = labvault("backup", "verify", str(tmp_path / "nope.zip"))
    assert missing.exit_code == 1 and "does not exist" in missing.stderr


def test_restore_into_an_empty_target_then_refuse_it_twice(organization, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    created = create(organization)
    target_db = f"sqlite:///{tmp_path / 'restored.db'}"
    target_files = str(tmp_path / "restored-files")
    restored = labvault("restore", created["sid"], "--to-database", target_db, "--to-files",
                        target_files, "--org", organization.sid, "--json")
    assert restored.exit_code == 0, restored.output
    report = json.loads(restored.stdout)
    assert (report["versions"], report["files"]) == (len(organization.versions), len(organization.files))
    with session_factory(target_db)() as session:
        assert session.scalar(select(func.count()).select_from(Version)) == len(organization.versions)
        assert session.scalar(select(func.count()).select_from(File)) == len(organization.files)

    again = labvault("restore", created["sid"], "--to-database", target_db, "--to-files", target_files)
    assert again.exit_code == 1
    last = again.stderr.strip().splitlines()[-1]
    assert last.startswith("error: the target already holds organization 'org-1'") and "--merge skip" in last
    bad_merge = labvault("restore", created["sid"], "--to-database", target_db, "--to-files",
                         target_files, "--merge", "maybe")
    assert bad_merge.exit_code == 1
    assert bad_merge.stderr.strip() == "error: unknown merge policy 'maybe'; use skip or overwrite"
