"""The `labvault` commands as a user runs them: exit codes, one-line errors, JSON for scripts."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import func, select
from typer.testing import CliRunner

from labvault.db.models import Backup, File, Record, Version
from labvault.demo import DEMO_ADMIN_EMAIL, DEMO_ORGANIZATION_SID
from labvault_cli.main import app
from tests.archive_checks import read_manifest

runner = CliRunner()

JSON_FIELDS = {"sid", "name", "description", "status", "versions", "files", "file_size", "file_path",
               "date_created", "date_expired", "error"}


def labvault(*args: str):  # type: ignore[no-untyped-def]
    return runner.invoke(app, list(args))


def backup_count(sessions) -> int:  # type: ignore[no-untyped-def]
    with sessions() as session:
        return session.scalar(select(func.count()).select_from(Backup))


def test_create_then_list_and_show_as_json(sessions, organization) -> None:  # type: ignore[no-untyped-def]
    result = labvault("backup", "create", "--org", organization.sid, "--name", "Q3 audit",
                      "--description", "before the move", "--as", organization.admin_email,
                      "--yes", "--json")
    assert result.exit_code == 0, result.output
    created = json.loads(result.stdout)
    assert JSON_FIELDS <= set(created)
    assert created["status"] == "Completed"
    assert (created["versions"], created["files"]) == (len(organization.versions), len(organization.files))
    assert created["file_size"] == Path(created["file_path"]).stat().st_size

    listed = labvault("backup", "list", "--json")
    assert listed.exit_code == 0, listed.output
    assert [row["sid"] for row in json.loads(listed.stdout)] == [created["sid"]]

    shown = labvault("backup", "show", created["sid"], "--json")
    assert shown.exit_code == 0, shown.output
    assert json.loads(shown.stdout) == created


def test_show_prints_every_field_for_people(sessions, organization) -> None:  # type: ignore[no-untyped-def]
    created = json.loads(labvault("backup", "create", "--org", organization.sid, "--name", "Human",
                                  "--as", organization.admin_email, "--yes", "--json").stdout)
    result = labvault("backup", "show", created["sid"])
    assert result.exit_code == 0, result.output
    for label in ("sid", "name", "description", "status", "versions", "files", "file size",
                  "file path", "date created", "date expired"):
        assert label in result.stdout
    assert "Completed" in result.stdout and created["sid"] in result.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--org", "no-such-org", "--name", "x", "--as", "admin@org-1.example"],
         "error: organization 'no-such-org' does not exist"),
        (["--org", "org-1", "--name", "x", "--as", "member@org-1.example"],
         "error: 'member@org-1.example' is not an admin of organization 'org-1'"),
        (["--org", "org-1", "--name", "  ", "--as", "admin@org-1.example"],
         "error: backup name is empty; give a short name"),
    ],
)
def test_a_refused_create_prints_one_line_and_changes_nothing(sessions, backups_storage, organization, args, message) -> None:  # type: ignore[no-untyped-def]
    result = labvault("backup", "create", *args)
    assert result.exit_code == 1
    assert result.stderr.strip() == message
    assert "Traceback" not in result.output
    assert backup_count(sessions) == 0
    assert backups_storage.list() == []


def test_a_failed_backup_exits_non_zero_with_its_reason(sessions, files, organization) -> None:  # type: ignore[no-untyped-def]
    row, _ = next(iter(organization.files.values()))
    files.delete(row.storage_key)
    result = labvault("backup", "create", "--org", organization.sid, "--name", "x",
                      "--as", organization.admin_email, "--yes", "--json")
    assert result.exit_code == 1
    shown = json.loads(result.stdout)
    assert shown["status"] == "Error" and "is missing from the files store" in shown["error"]
    # the whole stderr: no Prefect traceback or log line of the failed task above it
    assert result.stderr == f"error: backup {shown['sid']} failed: {shown['error']}\n"


def test_unknown_sid_and_empty_list(settings) -> None:  # type: ignore[no-untyped-def]
    result = labvault("backup", "show", "bk-000000")
    assert result.exit_code == 1
    assert result.stderr.strip() == "error: backup 'bk-000000' does not exist"
    listed = labvault("backup", "list")
    assert listed.exit_code == 0 and "No backups yet." in listed.stdout
    assert json.loads(labvault("backup", "list", "--json").stdout) == []


def test_a_database_without_schema_says_what_to_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LABVAULT_HOME", str(tmp_path))
    result = labvault("backup", "list")
    assert result.exit_code == 1
    assert "labvault db upgrade" in result.stderr and "Traceback" not in result.output
    assert labvault("db", "upgrade").exit_code == 0
    assert labvault("backup", "list").exit_code == 0


def test_a_bad_setting_is_one_line(monkeypatch: pytest.MonkeyPatch, settings) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("LABVAULT_RETENTION_DAYS", "-3")
    result = labvault("backup", "list")
    assert result.exit_code == 1
    assert result.stderr.startswith("error: LABVAULT_RETENTION_DAYS: ")
    assert len(result.stderr.strip().splitlines()) == 1


def test_demo_loads_an_awkward_organization_and_backs_it_up_twice(settings, sessions) -> None:  # type: ignore[no-untyped-def]
    first = labvault("demo")
    assert first.exit_code == 0, first.output
    second = labvault("demo")
    assert second.exit_code == 0, second.output
    assert "The zip is at:" in second.stdout

    with sessions() as session:
        count = lambda model: session.scalar(select(func.count()).select_from(model))  # noqa: E731
        assert count(Record) >= 50 and count(Version) >= 300 and count(File) >= 40
        names = session.scalars(select(File.name)).all()
        sizes = session.scalars(select(File.size)).all()
        backups = session.scalars(select(Backup).order_by(Backup.date_created)).all()
    assert any(not name.isascii() for name in names)
    assert any(" " in name for name in names)
    assert any("/" in name or ".." in name for name in names)
    assert max(sizes) >= 2 * 1024 * 1024 and min(sizes) < 1024
    assert [b.status.label for b in backups] == ["Completed", "Completed"]
    assert backups[0].sid != backups[1].sid
    assert backups[1].created_by == DEMO_ADMIN_EMAIL
    import zipfile
    with zipfile.ZipFile(backups[1].file_path) as archive:
        manifest = read_manifest(archive, DEMO_ORGANIZATION_SID)
    assert manifest["counts"] == {"versions": count_versions(sessions), "files": len(names)}


def count_versions(sessions) -> int:  # type: ignore[no-untyped-def]
    with sessions() as session:
        return session.scalar(select(func.count()).select_from(Version))
