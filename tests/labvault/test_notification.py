"""Notices as people receive them, through a real SMTP server on loopback."""

from __future__ import annotations

import logging
import ssl
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from labvault.catalog import BackupDetails
from labvault.errors import InvalidInputError, TransientError
from labvault.notification import LogNotifier, SmtpNotifier, backup_notice, notifier_for
from labvault.settings import get_settings
from tests.conftest import Mailbox, free_port

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


def self_signed_context(folder: Path) -> ssl.SSLContext:
    """A server TLS context with a fresh self-signed certificate for 127.0.0.1."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.now(timezone.utc)
    certificate = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
                   .public_key(key.public_key()).serial_number(x509.random_serial_number())
                   .not_valid_before(now - timedelta(minutes=1)).not_valid_after(now + timedelta(hours=1))
                   .sign(key, hashes.SHA256()))
    (folder / "cert.pem").write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    (folder / "key.pem").write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                                       serialization.PrivateFormat.PKCS8,
                                                       serialization.NoEncryption()))
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(folder / "cert.pem", folder / "key.pem")
    return context


def test_with_smtp_ssl_the_notice_goes_over_tls_from_the_first_byte(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from aiosmtpd.controller import Controller

    mailbox = Mailbox()
    port = free_port()
    controller = Controller(mailbox, hostname="127.0.0.1", port=port, ssl_context=self_signed_context(tmp_path))
    controller.start()
    try:
        monkeypatch.setenv("LABVAULT_SMTP_HOST", "127.0.0.1")
        monkeypatch.setenv("LABVAULT_SMTP_PORT", str(port))
        monkeypatch.setenv("LABVAULT_SMTP_SSL", "true")
        SmtpNotifier(get_settings()).send(backup_notice(COMPLETED, ["admin@org-1.example"]))
    finally:
        controller.stop()
    [(recipients, message)] = mailbox.messages
    assert recipients == ["admin@org-1.example"]
    assert message["Subject"] == "[labvault] Backup 'Q3 audit' Completed"


def test_smtp_ssl_and_starttls_together_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LABVAULT_SMTP_SSL", "true")
    monkeypatch.setenv("LABVAULT_SMTP_STARTTLS", "true")
    with pytest.raises(InvalidInputError) as refused:
        get_settings()
    assert str(refused.value) == ("LABVAULT_SMTP_SSL and LABVAULT_SMTP_STARTTLS are both set; keep the one "
                                  "your server speaks; fix that environment variable")
