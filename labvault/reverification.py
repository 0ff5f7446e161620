"""Checking Completed backups again, periodically, not only once after writing.

EU Annex 11 §7.2 asks that backup data be checked periodically for accessibility and integrity.
Each round reads the archives whose last check is oldest (never checked first), within a byte
budget, checks every entry against its manifest, and records when and with what result on the
backup. An archive that no longer matches stays Completed but is marked, and its admins told.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from labvault.archive.rules import ArchiveLimits
from labvault.archive.safe_names import archive_key
from labvault.archive.verify import verify_archive
from labvault.db.models import Backup, BackupStatus
from labvault.storage.store import Storage
from labvault.utc import utcnow

PROBLEMS_KEPT = 3


@dataclass
class VerificationRound:
    """What one round checked: sids that matched, sids that did not (with why), bytes read, and
    how many due backups were left for the next round by the budget."""

    matched: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    bytes_read: int = 0
    left_for_later: int = 0


def record_verification(session: Session, sid: str, problem: str | None, now: datetime | None = None) -> None:
    """Store the result of a check on the backup (None: every entry matched). Commits."""
    session.execute(update(Backup).where(Backup.sid == sid).values(
        verified_at=now or utcnow(), verified_ok=problem is None, verification_problem=problem))
    session.commit()


def due_for_verification(session: Session, older_than: timedelta, now: datetime | None = None) -> list[tuple[str, str, int]]:
    """(sid, organization sid, size) of Completed, kept backups not checked within `older_than`,
    never-checked first, then the longest unchecked."""
    now = now or utcnow()
    rows = session.execute(
        select(Backup.sid, Backup.organization_sid, Backup.file_size)
        .where(Backup.status == BackupStatus.COMPLETED, Backup.date_deleted.is_(None),
               or_(Backup.date_expired.is_(None), Backup.date_expired > now),
               or_(Backup.verified_at.is_(None), Backup.verified_at < now - older_than))
        .order_by(Backup.verified_at.is_not(None), Backup.verified_at, Backup.date_completed)
    )
    return [(sid, organization_sid, size or 0) for sid, organization_sid, size in rows]


def verify_due_backups(session: Session, storage: Storage, *, older_than: timedelta, byte_budget: int,
                       limits: ArchiveLimits | None = None, now: datetime | None = None) -> VerificationRound:
    """One round: check due archives, oldest check first, until the next would pass `byte_budget`
    (the first is always checked, so a large archive is never starved). A store that does not
    answer raises (the round is tried again); an archive missing from it is a failed check."""
    result = VerificationRound()
    due = due_for_verification(session, older_than, now)
    for index, (sid, organization_sid, size) in enumerate(due):
        if result.matched or result.failed:
            if result.bytes_read + size > byte_budget:
                result.left_for_later = len(due) - index
                break
        key = archive_key(organization_sid, sid)
        try:
            with storage.open_read(key) as source:
                report = verify_archive(source, label=key, limits=limits)
            problem = "; ".join(report.problems[:PROBLEMS_KEPT]) or None
        except FileNotFoundError:
            problem = f"the archive {key} is missing from the backups store"
        result.bytes_read += size
        record_verification(session, sid, problem, now)
        if problem is None:
            result.matched.append(sid)
        else:
            result.failed[sid] = problem
    return result
