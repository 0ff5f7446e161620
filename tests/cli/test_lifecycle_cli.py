"""Lifecycle commands as an admin types them: estimate, confirm, list filters, delete, retry, expire."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import func, select

from labvault.backups import start_backup
from labvault.db.models import Backup, BackupStatus
from tests.cli.terminal import on_terminal
from tests.cli.test_cli import backup_count, labvault
from tests.labvault.test_backups import request_for


def create(organization, *extra: str) -> dict:  # type: ignore[no-untyped-def]
    result = labvault("backup", "create", "--org", organization.sid, "--name", "Nightly",
                      "--as", organization.admin_email, "--yes", "--json", *extra)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_estimate_prints_counts_size_and_cost(organization) -> None:  # type: ignore[no-untyped-def]
    result = labvault("backup", "estimate", "--org", organization.sid, "--json")
    assert result.exit_code == 0, result.output
    estimate = json.loads(result.stdout)
    assert (estimate["versions"], estimate["files"]) == (len(organization.versions), len(organization.files))
    assert estimate["currency"] == "USD" and estimate["cost"] > 0
    human = labvault("backup", "estimate", "--org", organization.sid)
    for label in ("versions", "files", "estimated size", "cost", "per month"):
        assert label in human.stdout
    unknown = labvault("backup", "estimate", "--org", "nope")
    assert unknown.exit_code == 1 and unknown.stderr.strip() == "error: organization 'nope' does not exist"


def test_create_without_yes_and_without_a_terminal_refuses(sessions, organization) -> None:  # type: ignore[no-untyped-def]
    result = labvault("backup", "create", "--org", organization.sid, "--name", "x",
                      "--as", organization.admin_email)
    assert result.exit_code == 1
    assert "cost" in result.stdout  # the estimate was shown first
    assert result.stderr.strip() == ("error: this needs confirmation and there is no terminal to ask on; "
                                     "pass --yes")
    assert backup_count(sessions) == 0


def test_declining_at_the_terminal_changes_nothing(sessions, organization, settings) -> None:  # type: ignore[no-untyped-def]
    """A real terminal (a pty): the question is asked, 'n' is typed, no backup is made."""
    text, exit_code = on_terminal("backup", "create", "--org", organization.sid, "--name", "x",
                                  "--as", organization.admin_email, answer=(b"[y/N]", b"n\n"))
    assert "Create this backup for" in text and "USD?" in text
    assert "not confirmed: nothing was changed" in text
    assert exit_code == 1
    assert backup_count(sessions) == 0


def test_on_a_terminal_the_progress_bar_reaches_the_end(sessions, organization) -> None:  # type: ignore[no-untyped-def]
    """The bar is fed from the backup row; it once asked the wrong module, stayed at 0/? and
    printed a thread's traceback."""
    total = len(organization.versions) + len(organization.files)
    text, exit_code = on_terminal("backup", "create", "--org", organization.sid, "--name", "with a bar",
                                  "--as", organization.admin_email, "--yes")
    assert exit_code == 0, text
    assert f"{total}/{total}" in text, text
    assert "Traceback" not in text and "Exception in thread" not in text


def test_square_brackets_are_printed_as_they_are(sessions, organization, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """rich reads `[labvault]` or `[draft]` as a style and drops it; names and subjects are data."""
    monkeypatch.setenv("COLUMNS", "250")  # a wide terminal: the list's name column is not folded
    name = "[labvault] Q3 [draft] [bold]audit[/bold]"
    text, exit_code = on_terminal("backup", "create", "--org", organization.sid, "--name", name,
                                  "--as", organization.admin_email, "--yes")
    assert exit_code == 0, text
    assert name in text, text
    for args in (["backup", "list"], ["backup", "show", backup_sid_named(sessions, name)]):
        shown, exit_code = on_terminal(*args)
        assert exit_code == 0 and name in shown.replace("\r\n", "\n"), shown


def backup_sid_named(sessions, name: str) -> str:  # type: ignore[no-untyped-def]
    with sessions() as session:
        return session.scalar(select(Backup.sid).where(Backup.name == name))


def test_the_cost_is_stored_and_shown(sessions, organization) -> None:  # type: ignore[no-untyped-def]
    created = create(organization)
    with sessions() as session:
        backup = session.get(Backup, created["sid"])
    assert backup.cost == Decimal(str(created["cost"])) > 0
    shown = labvault("backup", "show", created["sid"])
    for label in ("cost", "USD", "requested by", "progress", "flow run", "last progress"):
        assert label in shown.stdout


def test_a_backup_that_failed_shows_no_cost(sessions, files, organization) -> None:  # type: ignore[no-untyped-def]
    """Nothing is charged for an Error backup: the estimate it started with is not its cost."""
    row, _ = next(iter(organization.files.values()))
    files.delete(row.storage_key)
    failed = labvault("backup", "create", "--org", organization.sid, "--name", "x",
                      "--as", organization.admin_email, "--yes", "--json")
    details = json.loads(failed.stdout)
    assert (details["status"], details["cost"]) == ("Error", None)
    shown = labvault("backup", "show", details["sid"])
    [cost_line] = [line for line in shown.stdout.splitlines() if line.startswith("cost")]
    assert cost_line.split() == ["cost", "—"]
    assert json.loads(labvault("backup", "list", "--json").stdout)[0]["cost"] is None


def test_list_searches_and_filters(sessions, files, organization) -> None:  # type: ignore[no-untyped-def]
    done = create(organization)
    with sessions() as session:
        running = start_backup(session, request_for(organization, name="Monthly archive"))

    def listed(*args: str) -> list[str]:
        result = labvault("backup", "list", "--json", *args)
        assert result.exit_code == 0, result.output
        return [row["sid"] for row in json.loads(result.stdout)]

    assert listed() == [running, done["sid"]]
    assert listed("--status", "completed") == [done["sid"]]
    assert listed("--status", "in-progress") == [running]
    assert listed("--status", "error") == []
    assert listed("--search", "MONTHLY") == [running]
    assert listed("--org", "org-1", "--search", done["sid"]) == [done["sid"]]
    empty = labvault("backup", "list", "--status", "error")
    assert empty.exit_code == 0 and "No backups match." in empty.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [(["--status", "finished"], "error: unknown status filter 'finished'; use one of all, completed, in-progress, error"),
     (["--search", ""], "error: search keyword is empty; give a word to look for")],
)
def test_list_bad_filters_are_one_line(settings, args, message) -> None:  # type: ignore[no-untyped-def]
    result = labvault("backup", "list", *args)
    assert result.exit_code == 1
    assert result.stderr.strip() == message


def test_delete_removes_archive_and_listing_once(sessions, backups_storage, organization) -> None:  # type: ignore[no-untyped-def]
    created = create(organization)
    sid = created["sid"]

    refused = labvault("backup", "delete", sid, "--as", organization.admin_email)
    assert refused.exit_code == 1 and "pass --yes" in refused.stderr
    not_admin = labvault("backup", "delete", sid, "--as", organization.member_email, "--yes")
    assert not_admin.exit_code == 1
    assert not_admin.stderr.strip() == f"error: '{organization.member_email}' is not an admin of organization 'org-1'"
    assert Path(created["file_path"]).exists()

    deleted = labvault("backup", "delete", sid, "--as", organization.admin_email, "--yes")
    assert deleted.exit_code == 0, deleted.output
    assert f"Backup {sid} (Nightly) deleted." in deleted.stdout
    assert not Path(created["file_path"]).exists()
    assert json.loads(labvault("backup", "list", "--json").stdout) == []

    again = labvault("backup", "delete", sid, "--as", organization.admin_email, "--yes")
    assert again.exit_code == 1 and again.stderr.strip() == f"error: backup '{sid}' does not exist"
    unknown = labvault("backup", "delete", "bk-unknown", "--as", organization.admin_email, "--yes")
    assert unknown.exit_code == 1 and unknown.stderr.strip() == "error: backup 'bk-unknown' does not exist"


def test_an_in_progress_backup_is_neither_deleted_nor_retried(sessions, organization) -> None:  # type: ignore[no-untyped-def]
    with sessions() as session:
        sid = start_backup(session, request_for(organization))
    deleted = labvault("backup", "delete", sid, "--as", organization.admin_email, "--yes")
    assert deleted.exit_code == 1 and f"backup {sid} is In Progress" in deleted.stderr
    retried = labvault("backup", "retry", sid, "--as", organization.admin_email)
    assert retried.exit_code == 1
    assert retried.stderr.strip() == f"error: backup {sid} is In Progress; only a backup in Error can be retried"
    with sessions() as session:
        assert session.get(Backup, sid).status is BackupStatus.IN_PROGRESS


def test_retry_completes_an_error_backup_and_refuses_a_completed_one(sessions, files, organization) -> None:  # type: ignore[no-untyped-def]
    row, data = next(iter(organization.files.values()))
    files.delete(row.storage_key)
    failed = labvault("backup", "create", "--org", organization.sid, "--name", "x",
                      "--as", organization.admin_email, "--yes", "--json")
    sid = json.loads(failed.stdout)["sid"]
    pending = files.open_write(row.storage_key)
    pending.write(data)
    pending.commit()

    retried = labvault("backup", "retry", sid, "--as", organization.admin_email, "--json")
    assert retried.exit_code == 0, retried.output
    details = json.loads(retried.stdout)
    assert (details["sid"], details["status"], details["error"]) == (sid, "Completed", None)
    assert Path(details["file_path"]).exists()
    again = labvault("backup", "retry", sid, "--as", organization.admin_email)
    assert again.exit_code == 1
    assert again.stderr.strip() == f"error: backup {sid} is Completed; only a backup in Error can be retried"
    unknown = labvault("backup", "retry", "bk-nope", "--as", organization.admin_email)
    assert unknown.exit_code == 1 and unknown.stderr.strip() == "error: backup 'bk-nope' does not exist"


def test_expire_reports_and_does_nothing_the_second_time(sessions, organization) -> None:  # type: ignore[no-untyped-def]
    created = create(organization)
    with sessions() as session:
        backup = session.get(Backup, created["sid"])
        backup.date_expired = backup.date_completed
        session.commit()
    first = labvault("expire", "--json")
    assert first.exit_code == 0, first.output
    assert json.loads(first.stdout) == {"deleted": [created["sid"]], "kept": [], "reaped": [],
                                        "failed_archives_removed": [], "orphans_removed": [],
                                        "restores_settled": []}
    assert first.stderr == ""
    second = labvault("expire")
    assert second.exit_code == 0 and second.stdout.count("none") == 6
    with sessions() as session:
        assert session.scalar(select(func.count()).select_from(Backup).where(Backup.date_deleted.is_(None))) == 0


def test_a_negative_retention_is_refused_by_every_command(settings, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("LABVAULT_RETENTION_DAYS", "-1")
    for args in (["expire"], ["backup", "estimate", "--org", "org-1"], ["backup", "retry", "bk-1", "--as", "admin@org-1.example"]):
        result = labvault(*args)
        assert result.exit_code == 1, args
        assert result.stderr.startswith("error: LABVAULT_RETENTION_DAYS: "), args
