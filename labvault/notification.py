"""Telling people a backup is done: the message, and how it is sent (SMTP, or the log).

A notice carries only the backup's public fields and its link, never a secret. Sending is kept
apart from the backup's status: a failed email is retried and logged, and never turns a
Completed backup into Error.
"""

from __future__ import annotations

import logging
import smtplib
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Protocol

from labvault.catalog import BackupDetails
from labvault.errors import TransientError
from labvault.settings import Settings
from labvault.sizes import human_size

SMTP_TIMEOUT_SECONDS = 30


@dataclass(frozen=True)
class BackupNotice:
    to: tuple[str, ...]
    subject: str
    body: str


class Notifier(Protocol):
    def send(self, notice: BackupNotice) -> str:
        """Deliver the notice; return what became of it, for the log (`emailed to …`)."""


def backup_notice(details: BackupDetails, to: list[str], public_url: str = "") -> BackupNotice:
    """The message for a finished backup, Completed or Error, to `to` (see
    `backups.notice_recipients`: who may still receive it is the database's to say).

    With the Backups page's `public_url`, the link is the page's download, which opens only for
    a signed-in admin of the organization: the email carries nothing that alone opens the
    archive. Without it, the archive's path or a presigned URL, as the CLI shows."""
    recipients = tuple(dict.fromkeys(address for address in to if address))
    subject = f"[labvault] Backup {details.name!r} {details.status}"
    page = f"{public_url}/backups/{details.sid}"
    download = f"{page}/download" if public_url else details.download_url or details.file_path
    if details.status == "Completed":
        body = (
            f"Your backup {details.name!r} ({details.sid}) of organization "
            f"{details.organization_sid} is ready.\n\n"
            f"Versions: {details.versions}\nFiles: {details.files}\n"
            f"Size: {human_size(details.file_size)} ({details.file_size} bytes)\n"
            f"Expires: {details.date_expired} (it is deleted automatically then)\n\n"
            f"Download: {download}\n"
        )
    else:
        body = (
            f"Your backup {details.name!r} ({details.sid}) of organization "
            f"{details.organization_sid} failed.\n\n"
            f"What failed: {details.error}\n\n"
            + (f"See it and retry it: {page}\n" if public_url else "")
            + f"To retry it under the same sid: labvault backup retry {details.sid} --as <your email>\n"
            "(or run the retry-backup deployment, or Retry the failed run in the Prefect UI).\n"
        )
    return BackupNotice(to=recipients, subject=subject, body=body)


class LogNotifier:
    """Writes the notice to a logger: the default when no SMTP host is configured."""

    def __init__(self, logger: logging.Logger | logging.LoggerAdapter) -> None:  # type: ignore[type-arg]
        self._logger = logger

    def send(self, notice: BackupNotice) -> str:
        self._logger.info("Notice for %s (not emailed: LABVAULT_SMTP_HOST is not set): %s\n%s",
                          ", ".join(notice.to) or "nobody", notice.subject, notice.body)
        return "logged only, not emailed (LABVAULT_SMTP_HOST is not set)"


class SmtpNotifier:
    """Sends the notice as a plain-text email; connection failures are transient."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings

    def send(self, notice: BackupNotice) -> str:
        if not notice.to:
            return "not emailed: it has no recipient"
        settings = self._settings
        message = EmailMessage()
        message["From"] = settings.smtp_from
        message["To"] = ", ".join(notice.to)
        message["Subject"] = notice.subject
        message.set_content(notice.body)
        try:
            connect = smtplib.SMTP_SSL if settings.smtp_ssl else smtplib.SMTP
            with connect(settings.smtp_host, settings.smtp_port, timeout=SMTP_TIMEOUT_SECONDS) as smtp:
                if settings.smtp_starttls:
                    smtp.starttls()
                if settings.smtp_username and settings.smtp_password is not None:
                    smtp.login(settings.smtp_username, settings.smtp_password.get_secret_value())
                smtp.send_message(message)
        except (smtplib.SMTPException, OSError) as exc:
            raise TransientError(
                f"cannot send email via {settings.smtp_host}:{settings.smtp_port}: "
                f"{type(exc).__name__}: {exc}"
            ) from exc
        return f"emailed to {', '.join(notice.to)}"


def notifier_for(settings: Settings, logger: logging.Logger | logging.LoggerAdapter) -> Notifier:  # type: ignore[type-arg]
    """SMTP when `LABVAULT_SMTP_HOST` is set, else the log."""
    return SmtpNotifier(settings) if settings.smtp_host else LogNotifier(logger)


def sign_in_notice(email: str, organization_sid: str, link: str, minutes: int) -> BackupNotice:
    """The email carrying a one-time sign-in link to the Backups page (sent, never logged)."""
    return BackupNotice(
        to=(email,), subject=f"[labvault] Sign in to the Backups page of {organization_sid}",
        body=(f"Open this link within {minutes} minutes to sign in to the Backups page of "
              f"organization {organization_sid}:\n\n{link}\n\n"
              "It works once. If you did not ask for it, ignore this email.\n"))


def verification_failed_notice(details: BackupDetails, problem: str, to: list[str],
                               public_url: str = "") -> BackupNotice:
    """Telling admins that a kept archive no longer matches its manifest: it cannot be trusted
    for a restore, and a new backup is the remedy."""
    where = f"\nSee it: {public_url}/backups/{details.sid}\n" if public_url else ""
    return BackupNotice(
        to=tuple(dict.fromkeys(address for address in to if address)),
        subject=f"[labvault] Backup {details.name!r} failed its periodic check",
        body=(f"The archive of backup {details.name!r} ({details.sid}) of organization "
              f"{details.organization_sid} no longer matches its manifest:\n\n{problem}\n\n"
              "Do not rely on it for a restore. Make a new backup, and check the backups store."
              f"\n{where}"))
