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


def backup_notice(details: BackupDetails, also_to: list[str] | None = None) -> BackupNotice:
    """The message for a finished backup, Completed or Error, to its requester and `also_to`."""
    recipients = tuple(dict.fromkeys(
        address for address in [details.requested_by or "", *(also_to or [])] if address
    ))
    subject = f"[labvault] Backup {details.name!r} {details.status}"
    if details.status == "Completed":
        body = (
            f"Your backup {details.name!r} ({details.sid}) of organization "
            f"{details.organization_sid} is ready.\n\n"
            f"Versions: {details.versions}\nFiles: {details.files}\n"
            f"Size: {human_size(details.file_size)} ({details.file_size} bytes)\n"
            f"Expires: {details.date_expired} (it is deleted automatically then)\n\n"
            f"Download: {details.download_url or details.file_path}\n"
        )
    else:
        body = (
            f"Your backup {details.name!r} ({details.sid}) of organization "
            f"{details.organization_sid} failed.\n\n"
            f"What failed: {details.error}\n\n"
            f"To retry it under the same sid: labvault backup retry {details.sid}\n"
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
            with smtplib.SMTP(settings.smtp_host, settings.smtp_port,
                              timeout=SMTP_TIMEOUT_SECONDS) as smtp:
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
