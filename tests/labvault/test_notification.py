"""Notices as people receive them, through a real SMTP server on loopback."""

from __future__ import annotations

import logging

import pytest

from labvault.catalog import BackupDetails
from labvault.errors import TransientError
from labvault.notification import LogNotifier, SmtpNotifier, backup_notice, notifier_for
from labvault.settings import get_settings
from tests.conftest import free_port

COMPLETED = BackupDetails(
    sid="bk-1", name="Q3 audit", description="", status="Completed", versions=12, files=3,
    file_size=2_500_000, file_path="/backups/org-1/bk-1.zip", date_created="2026-11-01T00:00:00+00:00",
    date_expired="2026-12-01T00:00:00+00:00", error=None, organization_sid="org-1",
    requested_by="admin@org-1.example", cost=0.01, date_completed=None, progress_done=15,
    progress_total=15, heartbeat_at=None, flow_run_id=None,
)


def test_a_completed_backup_email_has_counts_size_expiry_and_download_link(smtp_server) -> None:  # type: ignore[no-untyped-def]
    notice = backup_notice(COMPLETED, ["admin@org-1.example", "ops@org-1.example", "admin@org-1.example"])
    SmtpNotifier(get_settings()).send(notice)
    [(recipients, message)] = smtp_server.messages
    assert recipients == ["admin@org-1.example", "ops@org-1.example"]
    assert message["Subject"] == "[labvault] Backup 'Q3 audit' Completed"
    assert message["From"] == "backups@labvault.test"
    body = message.get_content()
    for text in ("Versions: 12", "Files: 3", "2.5 MB", "Expires: 2026-12-01",
                 "Download: /backups/org-1/bk-1.zip"):
        assert text in body


def test_an_error_email_says_what_failed_and_how_to_retry() -> None:
    failed = BackupDetails(**{**COMPLETED.__dict__, "status": "Error",
                              "error": "file u1 (a.pdf) is missing from the files store"})
    notice = backup_notice(failed, ["admin@org-1.example"])
    assert notice.subject == "[labvault] Backup 'Q3 audit' Error"
    assert "file u1 (a.pdf) is missing" in notice.body
    assert "labvault backup retry bk-1 --as <your email>" in notice.body


def test_an_unreachable_server_is_transient_and_never_shows_the_password(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LABVAULT_SMTP_HOST", "127.0.0.1")
    monkeypatch.setenv("LABVAULT_SMTP_PORT", str(free_port()))
    monkeypatch.setenv("LABVAULT_SMTP_USERNAME", "mailer")
    monkeypatch.setenv("LABVAULT_SMTP_PASSWORD", "s3cret-pa55")
    settings = get_settings()
    with pytest.raises(TransientError, match="cannot send email via 127.0.0.1") as caught:
        SmtpNotifier(settings).send(backup_notice(COMPLETED, ["admin@org-1.example"]))
    assert "s3cret-pa55" not in str(caught.value)
    assert "s3cret-pa55" not in repr(settings)


def test_without_an_smtp_host_notices_are_logged(caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LABVAULT_SMTP_HOST", raising=False)
    logger = logging.getLogger("labvault.test")
    notifier = notifier_for(get_settings(), logger)
    assert isinstance(notifier, LogNotifier)
    with caplog.at_level(logging.INFO, logger="labvault.test"):
        notifier.send(backup_notice(COMPLETED, ["admin@org-1.example"]))
    assert "Download: /backups/org-1/bk-1.zip" in caplog.text


def test_a_username_without_password_is_a_settings_error(monkeypatch: pytest.MonkeyPatch) -> None:
    from labvault.errors import InvalidInputError

    monkeypatch.setenv("LABVAULT_SMTP_USERNAME", "mailer")
    monkeypatch.delenv("LABVAULT_SMTP_PASSWORD", raising=False)
    with pytest.raises(InvalidInputError, match="smtp_password is required"):
        get_settings()
