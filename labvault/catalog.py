"""Finding backups: one by sid, lists with search and status filters, and how they are shown."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from sqlalchemy import Select, func, or_, select
from sqlalchemy.orm import Session

from labvault.archive.safe_names import archive_key
from labvault.db.models import Backup, BackupStatus, Organization
from labvault.errors import InvalidInputError, NotFoundError
from labvault.storage.store import Storage
from labvault.utc import utcnow

STATUS_FILTERS: dict[str, BackupStatus | None] = {
    "all": None,
    "completed": BackupStatus.COMPLETED,
    "in-progress": BackupStatus.IN_PROGRESS,
    "error": BackupStatus.ERROR,
}


def parse_status_filter(value: str) -> BackupStatus | None:
    """One of the four filters of the Backups page; None means all."""
    key = value.strip().lower().replace("_", "-").replace(" ", "-")
    if key not in STATUS_FILTERS:
        raise InvalidInputError(
            f"unknown status filter {value!r}; use one of {', '.join(STATUS_FILTERS)}"
        )
    return STATUS_FILTERS[key]


def get_organization(session: Session, sid: str) -> Organization:
    """The organization, or the one refusal every door gives for an unknown sid."""
    organization = session.get(Organization, sid)
    if organization is None:
        raise NotFoundError(f"organization {sid!r} does not exist")
    return organization


def get_backup(session: Session, sid: str) -> Backup:
    backup = session.get(Backup, sid)
    if backup is None or backup.date_deleted is not None:
        raise NotFoundError(f"backup {sid!r} does not exist")
    return backup


def _listing(session: Session, *, search: str | None, status: BackupStatus | None,
             organization_sid: str | None) -> Select[tuple[Backup]]:
    """Backups not deleted; `search` matches sid, name or description, any case. An unknown
    organization is refused (a mistyped sid would read as one with no backups)."""
    query = select(Backup).where(Backup.date_deleted.is_(None))
    if search is not None:
        keyword = search.strip().lower()
        if not keyword:
            raise InvalidInputError("search keyword is empty; give a word to look for")
        query = query.where(or_(*(
            func.lower(column).contains(keyword, autoescape=True)
            for column in (Backup.sid, Backup.name, Backup.description)
        )))
    if status is not None:
        query = query.where(Backup.status == status)
    if organization_sid is not None:
        get_organization(session, organization_sid)
        query = query.where(Backup.organization_sid == organization_sid)
    return query


NEWEST_FIRST = (Backup.date_created.desc(), Backup.sid)


def list_backups(session: Session, *, search: str | None = None,
                 status: BackupStatus | None = None,
                 organization_sid: str | None = None) -> list[Backup]:
    """Backups not deleted, newest first; `search` matches sid, name or description, any case."""
    query = _listing(session, search=search, status=status, organization_sid=organization_sid)
    return list(session.scalars(query.order_by(*NEWEST_FIRST)))


@dataclass(frozen=True)
class BackupPage:
    """One page of an organization's backups, newest first, and how many match in all."""

    backups: list[Backup]
    total: int
    page: int
    per_page: int

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.per_page))


def page_of_backups(session: Session, organization_sid: str, *, search: str | None = None,
                    status: BackupStatus | None = None, page: int = 1,
                    per_page: int = 25) -> BackupPage:
    """The Backups page's listing: one organization, a page at a time (an index on organization
    and creation date keeps a 10,000-backup organization fast). A page past the end is empty."""
    if page < 1 or not 1 <= per_page <= 200:
        raise InvalidInputError(f"page {page} of {per_page} backups is out of range")
    query = _listing(session, search=search, status=status, organization_sid=organization_sid)
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    backups = session.scalars(query.order_by(*NEWEST_FIRST).limit(per_page)
                              .offset((page - 1) * per_page))
    return BackupPage(list(backups), total, page, per_page)


def newest_started_since(session: Session, organization_sid: str, requested_by: str,
                         since: datetime) -> Backup | None:
    """The requester's newest backup of the organization started at or after `since`.

    Lets a watcher (the CLI's progress bar) find a backup it asked a flow to make.
    """
    return session.scalar(
        select(Backup).where(Backup.organization_sid == organization_sid,
                             func.lower(Backup.created_by) == requested_by.lower(),
                             Backup.date_created >= since)
        .order_by(Backup.date_created.desc()).limit(1)
    )


def backup_for_flow_run(session: Session, flow_run_id: str) -> Backup | None:
    return session.scalar(select(Backup).where(Backup.flow_run_id == flow_run_id))


def download_link(backup: Backup, backups_storage: Storage, now: datetime | None = None) -> str | None:
    """A fresh link to a Completed backup's archive, valid until it expires (at most 7 days on
    S3: ask again for a new one)."""
    if backup.status is not BackupStatus.COMPLETED or backup.date_expired is None:
        return None
    lifetime = backup.date_expired - (now or utcnow())
    if lifetime <= timedelta(0):
        return None
    return backups_storage.download_link(archive_key(backup.organization_sid, backup.sid), lifetime)


def _charged(backup: Backup) -> float | None:
    """What the backup was charged: only a Completed one was (until then the row holds the
    estimate it started with, and a backup that failed costs nothing)."""
    if backup.status is not BackupStatus.COMPLETED or backup.cost is None:
        return None
    return float(backup.cost) if isinstance(backup.cost, Decimal) else backup.cost


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


@dataclass(frozen=True)
class BackupDetails:
    """A backup as people and scripts see it: status by its label, sizes in bytes, ISO dates."""

    sid: str
    name: str
    description: str
    status: str
    versions: int | None
    files: int | None
    file_size: int | None
    file_path: str | None
    date_created: str
    date_expired: str | None
    error: str | None
    organization_sid: str
    requested_by: str | None
    cost: float | None
    date_completed: str | None
    progress_done: int | None
    progress_total: int | None
    heartbeat_at: str | None
    flow_run_id: str | None
    verified_at: str | None = None
    verified_ok: bool | None = None
    verification_problem: str | None = None
    download_url: str | None = None
    legal_hold: bool = False

    @property
    def last_verification(self) -> str | None:
        """The last check of the archive against its manifest, in a few words."""
        if self.verified_at is None:
            return None
        outcome = "every entry matched the manifest" if self.verified_ok else f"FAILED: {self.verification_problem}"
        return f"{self.verified_at[:19].replace('T', ' ')} UTC: {outcome}"

    @classmethod
    def of(cls, backup: Backup, backups_storage: Storage | None = None) -> "BackupDetails":
        """The backup's fields; with its storage, also a fresh download link."""
        return cls(
            sid=backup.sid, name=backup.name, description=backup.description,
            status=backup.status.label, versions=backup.versions, files=backup.files,
            file_size=backup.file_size, file_path=backup.file_path,
            date_created=backup.date_created.isoformat(), date_expired=_iso(backup.date_expired),
            error=backup.error, organization_sid=backup.organization_sid,
            requested_by=backup.created_by,
            cost=_charged(backup),
            date_completed=_iso(backup.date_completed), progress_done=backup.progress_done,
            progress_total=backup.progress_total, heartbeat_at=_iso(backup.heartbeat_at),
            flow_run_id=backup.flow_run_id, verified_at=_iso(backup.verified_at),
            verified_ok=backup.verified_ok, verification_problem=backup.verification_problem,
            download_url=download_link(backup, backups_storage) if backups_storage else None,
            legal_hold=bool(backup.legal_hold),
        )
