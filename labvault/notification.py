"""Telling the requester a backup is done: the message, and the seam a mailer plugs into.

Email over SMTP arrives with the lifecycle issue as another `Notifier`; until then notices are
logged. A notice never carries secrets: only the backup's public fields and its link.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Protocol

from labvault.backups import BackupDetails


@dataclass(frozen=True)
class BackupNotice:
    to: str
    subject: str
    body: str


class Notifier(Protocol):
    def send(self, notice: BackupNotice) -> None: ...


def backup_notice(details: BackupDetails) -> BackupNotice:
    """The message for a finished backup, Completed or Error."""
    if details.status == "Completed":
        subject = f"Backup {details.name!r} is ready"
        body = (
            f"Your backup {details.sid} ({details.name}) is ready: {details.versions} versions, "
            f"{details.files} files, {details.file_size} bytes.\n"
            f"Download: {details.file_path}\n"
            f"It will be deleted on {details.date_expired}."
        )
    else:
        subject = f"Backup {details.name!r} failed"
        body = f"Your backup {details.sid} ({details.name}) failed: {details.error}"
    return BackupNotice(to=details.requested_by or "", subject=subject, body=body)


class LogNotifier:
    """Writes the notice to a logger (the default until email is configured)."""

    def __init__(self, logger: logging.Logger | logging.LoggerAdapter) -> None:  # type: ignore[type-arg]
        self._logger = logger

    def send(self, notice: BackupNotice) -> None:
        self._logger.info("Notice to %s: %s\n%s", notice.to, notice.subject, notice.body)
