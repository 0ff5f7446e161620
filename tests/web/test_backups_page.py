"""The Backups page's screens over HTTP: add with cost, detail, list, downloads, audit trail."""

from __future__ import annotations

import html
from datetime import timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from labvault.backups import BackupRequest, start_backup
from labvault.db.models import AuditEvent, Backup, BackupStatus
from labvault.utc import utcnow
from tests.web.conftest import csrf_of, sign_in_as, wait_for_status


def add_backup(browser: Any, name: str, description: str = "") -> Any:
    form = browser.get("/backups/new")
    return browser.post("/backups", data={"name": name, "description": description,
                                          "csrf": csrf_of(form.text)})


def completed_backup(browser: Any, sessions: Any, organization: Any, name: str = "From the page") -> Backup:
    sign_in_as(browser, sessions, organization.admin_email)
    created = add_backup(browser, name)
    assert created.status_code == 303, created.text
    sid = created.headers["location"].removeprefix("/backups/")
    backup = wait_for_status(sessions, sid)
    assert backup.status is BackupStatus.COMPLETED, backup.error
    return backup


def test_add_shows_the_cost_then_the_new_backup_runs_to_completed(browser, sessions, organization) -> None:  # type: ignore[no-untyped-def]
    sign_in_as(browser, sessions, organization.admin_email)
    form = html.unescape(browser.get("/backups/new").text)
    assert form.index("Cost") < form.index('name="name"') < form.index('name="description"') < form.index("Submit")
    assert f"<dt>Versions</dt><dd>{len(organization.versions)}</dd>" in form
    assert f"<dt>Files</dt><dd>{len(organization.files)}</dd>" in form
    assert "USD" in form and "per month" in form

    created = add_backup(browser, "Q3 audit", "before the move")
    assert created.status_code == 303
    detail = browser.get(created.headers["location"])
    assert detail.status_code == 200
    sid = created.headers["location"].removeprefix("/backups/")
    backup = wait_for_status(sessions, sid)
    assert backup.status is BackupStatus.COMPLETED
    fields = html.unescape(browser.get(f"/backups/{sid}/fields").text)
    for label, value in (("Sid", sid), ("Name", "Q3 audit"), ("Description", "before the move"),
                         ("Status", "Completed"), ("Versions", str(backup.versions)),
                         ("Files", str(backup.files))):
        assert f"<dt>{label}</dt><dd>" in fields and value in fields
    assert f'href="/backups/{sid}/download"' in fields and "data-refresh" not in fields
    assert f"{backup.cost:.2f} USD" in fields
    assert "UTC: every entry matched the manifest" in fields


def test_bad_input_is_shown_next_to_the_field_and_nothing_is_created(browser, sessions, organization) -> None:  # type: ignore[no-untyped-def]
    sign_in_as(browser, sessions, organization.admin_email)
    for name, description, message in (
            ("   ", "", "backup name is empty; give a short name"),
            ("x" * 256, "", "backup name has 256 characters; the limit is 255"),
            ("ok", "d" * 5001, "backup description has 5001 characters; the limit is 5000"),
            ("bad\u202ename", "", "backup name contains control or invisible formatting characters")):
        refused = add_backup(browser, name, description)
        assert refused.status_code == 400
        text = html.unescape(refused.text)
        assert message in text
        assert 'class="error field-error"' in text
    with sessions() as session:
        assert session.scalar(select(func.count()).select_from(Backup)) == 0


def test_a_second_backup_while_one_runs_is_refused_with_a_clear_message(browser, sessions, organization) -> None:  # type: ignore[no-untyped-def]
    with sessions() as session:
        running = start_backup(session, BackupRequest(organization.sid, "Running", "", organization.admin_email))
    sign_in_as(browser, sessions, organization.admin_email)
    refused = add_backup(browser, "Another")
    assert refused.status_code == 409
    assert f"organization 'org-1' already has backup {running} in progress" in html.unescape(refused.text)
    with sessions() as session:
        assert session.scalar(select(func.count()).select_from(Backup)) == 1


def test_downloads_answer_ranges_so_a_broken_download_resumes(browser, sessions, organization) -> None:  # type: ignore[no-untyped-def]
    backup = completed_backup(browser, sessions, organization)
    data = Path(backup.file_path).read_bytes()
    whole = browser.get(f"/backups/{backup.sid}/download")
    assert whole.status_code == 200 and whole.content == data
    assert whole.headers["content-type"] == "application/zip"
    assert whole.headers["content-length"] == str(len(data))
    assert whole.headers["content-disposition"] == f'attachment; filename="{backup.sid}.zip"'
    assert whole.headers["accept-ranges"] == "bytes"
    size = len(data)
    for header, expected, content_range in (
            ("bytes=0-99", data[:100], f"bytes 0-99/{size}"),
            (f"bytes=100-{size // 2}", data[100:size // 2 + 1], f"bytes 100-{size // 2}/{size}"),
            ("bytes=-100", data[-100:], f"bytes {size - 100}-{size - 1}/{size}"),
            (f"bytes={size - 10}-", data[-10:], f"bytes {size - 10}-{size - 1}/{size}")):
        part = browser.get(f"/backups/{backup.sid}/download", headers={"Range": header})
        assert part.status_code == 206, header
        assert part.content == expected and part.headers["content-range"] == content_range, header
    beyond = browser.get(f"/backups/{backup.sid}/download", headers={"Range": f"bytes={size + 5}-"})
    assert beyond.status_code == 416 and beyond.headers["content-range"] == f"bytes */{size}"


def test_expired_and_deleted_backups_are_not_downloadable(browser, sessions, organization) -> None:  # type: ignore[no-untyped-def]
    backup = completed_backup(browser, sessions, organization)
    with sessions() as session:
        session.get(Backup, backup.sid).date_expired = utcnow() - timedelta(minutes=1)
        session.commit()
    expired = browser.get(f"/backups/{backup.sid}/download")
    assert expired.status_code == 410 and "has expired" in expired.text
    with sessions() as session:
        session.get(Backup, backup.sid).date_expired = utcnow() + timedelta(days=1)
        session.commit()
    confirm = browser.get(f"/backups/{backup.sid}/delete")
    deleted = browser.post(f"/backups/{backup.sid}/delete", data={"csrf": csrf_of(confirm.text)})
    assert deleted.status_code == 303 and "deleted" in deleted.headers["location"]
    assert not Path(backup.file_path).exists()
    gone = browser.get(f"/backups/{backup.sid}/download")
    assert gone.status_code == 404


def test_the_audit_trail_keeps_who_did_what_through_which_door(browser, sessions, organization) -> None:  # type: ignore[no-untyped-def]
    from typer.testing import CliRunner

    from labvault_cli.main import app as cli

    backup = completed_backup(browser, sessions, organization)
    browser.get(f"/backups/{backup.sid}/download")
    browser.get(f"/backups/{backup.sid}/download", headers={"Range": "bytes=0-9"})  # a resumed piece
    detail = html.unescape(browser.get(f"/backups/{backup.sid}").text)
    assert "Audit trail" in detail and "downloaded" in detail
    by_cli = CliRunner().invoke(cli, ["backup", "delete", backup.sid, "--as", organization.admin_email, "--yes"])
    assert by_cli.exit_code == 0, by_cli.output
    with sessions() as session:
        events = [(e.action, e.actor, e.door) for e in session.scalars(
            select(AuditEvent).where(AuditEvent.backup_sid == backup.sid).order_by(AuditEvent.id))]
        assert session.get(Backup, backup.sid).date_deleted is not None
    assert events == [("created", organization.admin_email, "web"),
                      ("downloaded", organization.admin_email, "web"),
                      ("deleted", organization.admin_email, "cli")]


def completed_notice(smtp_server: Any, timeout: float = 30) -> str:
    """The Completed email's body (the notice is sent just after the backup turns Completed)."""
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for _, message in smtp_server.messages:
            if "Completed" in message["Subject"]:
                return str(message.get_content())
        time.sleep(0.1)
    raise AssertionError("no Completed notice arrived")


def test_the_email_links_to_the_page_not_to_a_file(smtp_server, monkeypatch, browser, sessions, organization) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("LABVAULT_PUBLIC_URL", "https://backups.example.org/")
    backup = completed_backup(browser, sessions, organization)
    body = completed_notice(smtp_server)
    assert f"Download: https://backups.example.org/backups/{backup.sid}/download" in body
    assert backup.file_path not in body


def test_search_filters_and_pages_are_in_the_url(browser, sessions, organization) -> None:  # type: ignore[no-untyped-def]
    now = utcnow()
    with sessions() as session:
        for number in range(30):
            session.add(Backup(sid=f"bk-{number:04d}", organization_sid=organization.sid,
                               name=f"Nightly {number}" if number % 3 else f"Audit {number}",
                               description="", created_by=organization.admin_email,
                               status=BackupStatus.ERROR if number % 5 == 0 else BackupStatus.COMPLETED,
                               date_created=now - timedelta(hours=number)))
        session.commit()
    sign_in_as(browser, sessions, organization.admin_email)
    first = browser.get("/backups").text
    assert "30 backups · page 1 of 2" in first
    assert first.index('data-sid="bk-0000"') < first.index('data-sid="bk-0001"')  # newest first
    assert 'data-sid="bk-0025"' not in first
    second = browser.get("/backups?page=2").text
    assert 'data-sid="bk-0025"' in second and 'data-sid="bk-0000"' not in second
    audits = browser.get("/backups?q=audit").text
    assert "10 backups" in audits and "Clear" in audits
    errors = browser.get("/backups?q=audit&status=error").text
    assert "2 backups" in errors  # Audit 0 and Audit 15
    assert 'aria-current="page" class="current">Backups with errors' in errors
    assert "No backups match." in browser.get("/backups?q=nothing-like-this").text
