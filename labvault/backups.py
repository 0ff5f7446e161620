"""The backup service: each step of creating a backup, as plain functions over a session.

Steps are called in order by the create-backup flow (or by anything else): `start_backup`,
`open_archive`, `copy_files`, `snapshot_versions`, `ArchiveWriter.seal`, `finish_backup`; a
failure after the row exists ends in `fail_backup`. The caller owns sessions and transactions,
and keeps the backup alive from `open_archive` to `finish_backup` with a `liveness.Heartbeat`.
"""

from __future__ import annotations

import secrets
import time
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from functools import partial
from typing import Any, BinaryIO

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from labvault import audit
from labvault.archive.safe_names import archive_key, file_entry_name, version_entry_name
from labvault.archive.verify import ArchiveLimits, VerifyReport, verify_archive
from labvault.archive.writer import COPY_BUFFER_BYTES, ArchiveWriter, Readable, SealedArchive, read_ahead
from labvault.catalog import get_backup, get_organization
from labvault.db.models import Backup, BackupStatus, File, Organization, User, Version
from labvault.errors import (
    ConflictError,
    InvalidInputError,
    MissingBlobError,
    PermanentError,
    PermissionDeniedError,
    TransientError,
    one_line,
)
from labvault.liveness import beat
from labvault.pricing import Pricing, count_contents
from labvault.storage.open_ahead import opened_ahead
from labvault.storage.store import Storage
from labvault.utc import utcnow

NAME_MAX_CHARS = 255
DESCRIPTION_MAX_CHARS = 5000
OPEN_ATTEMPTS = 3
OPEN_AHEAD = 4  # files of a remote store being opened while one is copied,
OPEN_AHEAD_BYTES = 64 * 1024 * 1024  # when no more than this is to be copied before each


@dataclass(frozen=True)
class BackupRequest:
    """What an admin asks for; validated by `check_request` before anything is written."""

    organization_sid: str
    name: str
    description: str
    requested_by: str


def _check_text(label: str, value: str, limit: int, *, required: bool) -> str:
    text = value.strip()
    if required and not text:
        raise InvalidInputError(f"backup {label} is empty; give a short {label}")
    if len(text) > limit:
        raise InvalidInputError(f"backup {label} has {len(text)} characters; the limit is {limit}")
    if any(unicodedata.category(ch) in ("Cc", "Cf") and ch not in "\n\t" for ch in text):
        raise InvalidInputError(f"backup {label} contains control or invisible formatting characters "
                                "(such as right-to-left marks); remove them")
    return text


def require_admin(session: Session, organization_sid: str, email: str) -> None:
    """Only an organization's admins may create or delete its backups."""
    is_admin = session.scalar(
        select(func.count()).select_from(User).where(
            User.organization_sid == organization_sid,
            func.lower(User.email) == email.strip().lower(),
            User.is_admin.is_(True),
        )
    )
    if not is_admin:
        raise PermissionDeniedError(
            f"{email!r} is not an admin of organization {organization_sid!r}"
        )


def check_request(session: Session, request: BackupRequest) -> BackupRequest:
    """Refuse a bad request with one clear line; return it with name and description trimmed."""
    name = _check_text("name", request.name, NAME_MAX_CHARS, required=True)
    description = _check_text("description", request.description, DESCRIPTION_MAX_CHARS,
                              required=False)
    get_organization(session, request.organization_sid)
    require_admin(session, request.organization_sid, request.requested_by)
    return BackupRequest(request.organization_sid, name, description, request.requested_by.strip())


def render_backup_name(template: str, when: datetime) -> str:
    """A scheduled backup's name: `{date}` becomes YYYY-MM-DD and `{time}` HH:MM (UTC)."""
    when = when.astimezone(timezone.utc)
    try:
        return template.format(date=when.strftime("%Y-%m-%d"), time=when.strftime("%H:%M"))
    except (KeyError, IndexError, ValueError) as exc:
        raise InvalidInputError(
            f"name template {template!r} is malformed ({exc}); use {{date}} and {{time}} only"
        ) from exc


def admin_emails(session: Session, organization_sid: str) -> list[str]:
    """Every admin of the organization, oldest account first."""
    return list(session.scalars(
        select(User.email).where(User.organization_sid == organization_sid, User.is_admin.is_(True))
        .order_by(User.id)
    ))


def new_backup_sid() -> str:
    return "bk-" + secrets.token_hex(6)


def _version_criteria(backup: Backup) -> Any:
    """Versions in the backup: the organization's, as they stood when the backup started."""
    return Version.organization_sid == backup.organization_sid, Version.created_at <= backup.date_created


def _file_criteria(backup: Backup) -> Any:
    return File.organization_sid == backup.organization_sid, File.created_at <= backup.date_created


def _count(session: Session, model: Any, criteria: Any) -> int:
    return session.scalar(select(func.count()).select_from(model).where(*criteria)) or 0


def start_backup(session: Session, request: BackupRequest, *, flow_run_id: str | None = None,
                 cost: Decimal | None = None, retention_days: int | None = None,
                 now: datetime | None = None, door: str = "flow") -> str:
    """Validate the request and insert the row In Progress; commits.

    Re-entrant: when a row already belongs to `flow_run_id` (the Prefect UI's Retry runs the same
    flow run again), that row is reset to In Progress and its sid returned.
    """
    request = check_request(session, request)
    now = now or utcnow()
    backup = None
    if flow_run_id:
        backup = session.scalar(
            select(Backup).where(Backup.flow_run_id == flow_run_id, Backup.date_deleted.is_(None))
        )
    action: audit.Action = "retried"  # the Prefect UI's Retry of the same flow run
    if backup is None:
        backup = Backup(sid=new_backup_sid(), organization_sid=request.organization_sid)
        action = "created"
    audit.record(session, organization_sid=request.organization_sid, backup_sid=backup.sid,
                 action=action, actor=request.requested_by, door=door)
    backup.name = request.name
    backup.description = request.description
    backup.created_by = request.requested_by
    backup.cost = cost
    backup.retention_days = retention_days
    _reset_to_in_progress(session, backup, flow_run_id, now)
    return backup.sid


def _refuse_a_second_running_backup(session: Session, organization_sid: str, sid: str) -> None:
    with session.no_autoflush:
        running = session.scalar(
            select(Backup).where(Backup.organization_sid == organization_sid, Backup.sid != sid,
                                 Backup.status == BackupStatus.IN_PROGRESS,
                                 Backup.date_deleted.is_(None))
        )
    if running is not None:
        raise ConflictError(
            f"organization {organization_sid!r} already has backup {running.sid} in progress "
            f"(started {running.date_created.isoformat()}); wait for it to end, or for the "
            "expiry flow to reap it if its worker died"
        )


def check_none_running(session: Session, organization_sid: str, *, but: str = "") -> None:
    """Refuse, in one line, to start a backup while another of the organization runs (`but`:
    the backup about to be retried)."""
    _refuse_a_second_running_backup(session, organization_sid, but)


def _reset_to_in_progress(session: Session, backup: Backup, flow_run_id: str | None,
                          now: datetime) -> None:
    """(Re)start a backup's run: its contents will be the state of the data at `now`. Commits.

    One backup per organization runs at a time: a second is refused, and the database's unique
    index settles a race between two starts.
    """
    _refuse_a_second_running_backup(session, backup.organization_sid, backup.sid)
    session.add(backup)
    backup.status = BackupStatus.IN_PROGRESS
    backup.flow_run_id = flow_run_id
    backup.error = None
    backup.date_created = now
    backup.heartbeat_at = now
    backup.date_completed = backup.date_expired = None
    backup.versions = backup.files = backup.file_size = None
    backup.file_path = None
    backup.progress_done = 0
    try:
        session.flush()
    except IntegrityError:
        session.rollback()
        _refuse_a_second_running_backup(session, backup.organization_sid, backup.sid)
        raise
    backup.progress_total = (_count(session, Version, _version_criteria(backup))
                             + _count(session, File, _file_criteria(backup)))
    session.commit()


def restart_backup(session: Session, sid: str, requested_by: str, *,
                   flow_run_id: str | None = None, now: datetime | None = None,
                   door: str = "flow") -> str:
    """Make an Error backup In Progress again, same sid, error cleared, on behalf of an admin of
    its organization, who becomes its requester (the one told how it ends). Commits."""
    backup = check_retry(session, sid, requested_by)
    backup.created_by = requested_by.strip()
    audit.record(session, organization_sid=backup.organization_sid, backup_sid=sid, action="retried",
                 actor=backup.created_by, door=door)
    _reset_to_in_progress(session, backup, flow_run_id, now or utcnow())
    return backup.sid


def check_retry(session: Session, sid: str, requested_by: str) -> Backup:
    """Only an admin of the organization may retry, and only a backup in Error: a Completed one
    is done, an In Progress one runs. The requester is checked now: admins change."""
    backup = get_backup(session, sid)
    if backup.status is not BackupStatus.ERROR:
        raise InvalidInputError(
            f"backup {sid} is {backup.status.label}; only a backup in Error can be retried"
        )
    require_admin(session, backup.organization_sid, requested_by)
    return backup


def notice_recipients(session: Session, backup: Backup, *, to_admins: bool = False) -> list[str]:
    """Who is told how a backup ended: its requester while still an admin of the organization
    (an admin removed meanwhile gets no download link), and with `to_admins` every admin."""
    admins = admin_emails(session, backup.organization_sid)
    requester = (backup.created_by or "").strip()
    still_admin = requester.lower() in {admin.lower() for admin in admins}
    return [*([requester] if still_admin else []), *(admins if to_admins else [])]


def open_archive(session: Session, backups_storage: Storage, sid: str) -> ArchiveWriter:
    """A pending archive for the backup; nothing is visible until it is sealed."""
    backup = get_backup(session, sid)
    organization = session.get(Organization, backup.organization_sid)
    key = archive_key(backup.organization_sid, backup.sid)
    header = {
        "backup": {"sid": backup.sid, "name": backup.name, "description": backup.description},
        "organization": {"sid": backup.organization_sid,
                         "name": organization.name if organization else None},
        "created": backup.date_created.isoformat(),
        "requested_by": backup.created_by,
    }
    expected = count_contents(session, backup.organization_sid, backup.date_created).estimated_bytes
    return ArchiveWriter(backups_storage.open_write(key, expected), key=key, manifest_header=header,
                         organization_sid=backup.organization_sid, created=backup.date_created)


class ProgressRecorder:
    """Counts items done and records them on the backup row at most every `interval` seconds.

    The row's `progress_done` counts the whole backup (what `backup show` and the CLI bar
    report); the optional listener (a Prefect progress artifact) hears the current step's own
    count against that step's total, so each step's report ends at 100 %. Writes only while
    `run_id` holds the backup (see `labvault.liveness`).
    """

    def __init__(self, sessions: sessionmaker[Session], sid: str, *, run_id: str | None = None,
                 interval: float = 2.0, listener: Callable[[int, int], None] | None = None) -> None:
        self._sessions = sessions
        self._sid = sid
        self._run_id = run_id
        self._interval = interval
        self._listener = listener
        self._last = time.monotonic()
        self.step_done = self.step_total = 0
        with sessions() as session:
            self.done = get_backup(session, sid).progress_done or 0

    def start_step(self, total: int) -> None:
        """A step of `total` items begins."""
        self.step_done, self.step_total = 0, total

    def advance(self, count: int = 1) -> None:
        self.done += count
        self.step_done += count
        if time.monotonic() - self._last >= self._interval:
            self.flush()

    def end_step(self) -> None:
        """The step has streamed every item there is: its count is its total (a row deleted
        since the step's count was taken is not missing from it)."""
        self.step_total = self.step_done
        self.flush()

    def flush(self) -> None:
        self._last = time.monotonic()
        with self._sessions.begin() as session:
            beat(session, self._sid, self._run_id, progress_done=self.done)
        if self._listener:
            self._listener(self.step_done, self.step_total)


def version_document(row: Any) -> dict[str, Any]:
    """The JSON document of one version: its row (sid, record_sid, number, created_at,
    created_by, data), field for field. Unpacked as a tuple: a Row's attribute access costs a
    microsecond per field, which at a million versions is seconds."""
    sid, record_sid, number, created_at, created_by, data = row
    return {
        "sid": sid,
        "record_sid": record_sid,
        "number": number,
        "created_at": created_at.isoformat(),
        "created_by": created_by,
        "data": data,
    }


def snapshot_versions(session: Session, sid: str, archive: ArchiveWriter,
                      progress: ProgressRecorder) -> int:
    """Stream every version into `<org>/versions/<sid>.json`, never holding all rows in memory."""
    backup = get_backup(session, sid)
    # Core rows on the session's own connection (same transaction): the ORM's per-row
    # bookkeeping cost as much as writing the version to the archive.
    rows = session.connection().execute(
        select(Version.sid, Version.record_sid, Version.number, Version.created_at,
               Version.created_by, Version.data)
        .where(*_version_criteria(backup)).order_by(Version.sid)
        .execution_options(yield_per=1000)
    )
    before = archive.versions
    progress.start_step(_count(session, Version, _version_criteria(backup)))
    for row in rows:
        document = version_document(row)
        archive.add_json(version_entry_name(backup.organization_sid, document["sid"]), document,
                         modified=row[3])  # created_at, by position (see version_document)
        progress.advance()
    progress.end_step()
    return archive.versions - before


class _NamedBlob:
    """A file's bytes as the copy reads them: a failure mid-read names the file (the store's
    own error says only that a connection broke or a disk failed)."""

    def __init__(self, source: BinaryIO, row: Any) -> None:
        self._source = source
        self._reader: Readable = source  # the source, or what was read ahead followed by it
        self._row = row

    def read(self, size: int = -1) -> bytes:
        try:
            return self._reader.read(size)
        except Exception as exc:
            raise self._failed(exc) from exc

    def read_ahead(self) -> None:
        """Read the first megabyte (all of a small file) now, on the thread that opened the blob:
        the copy then finds a small remote file in memory, and the transfers of the next ones
        overlap its copy instead of waiting behind it. Closes the blob when that fails."""
        try:
            _, self._reader = read_ahead(self._source)
        except Exception as exc:
            self.close()
            raise self._failed(exc) from exc

    def _failed(self, exc: Exception) -> TransientError:
        return TransientError(f"file {self._row.uid} ({self._row.name}): reading it from the files "
                              f"store failed: {one_line(exc)}")

    def close(self) -> None:
        self._source.close()

    def __enter__(self) -> "_NamedBlob":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _open_blob(files_storage: Storage, row: Any, *, read_small_ahead: bool = False) -> _NamedBlob:
    """Open a file's bytes, retrying transient failures; a missing blob names the file. With
    `read_small_ahead`, a file of at most COPY_BUFFER_BYTES is read whole here (a failure while
    reading it is retried too)."""
    for attempt in range(1, OPEN_ATTEMPTS + 1):
        try:
            blob = _NamedBlob(files_storage.open_stream(row.storage_key), row)
            if read_small_ahead and row.size is not None and row.size <= COPY_BUFFER_BYTES:
                blob.read_ahead()
            return blob
        except FileNotFoundError as exc:
            raise MissingBlobError(
                f"file {row.uid} ({row.name}) is missing from the files store"
            ) from exc
        except InvalidInputError as exc:
            raise InvalidInputError(f"file {row.uid} ({row.name}): {exc}") from exc
        except TransientError:
            if attempt == OPEN_ATTEMPTS:
                raise
            time.sleep(0.5 * 2**attempt)
    raise AssertionError("unreachable")


def copy_files(session: Session, sid: str, files_storage: Storage, archive: ArchiveWriter,
               progress: ProgressRecorder) -> int:
    """Stream every uploaded file's bytes into `<org>/<uid>_<safe name>`, chunk by chunk."""
    backup = get_backup(session, sid)
    rows = session.execute(
        select(File.uid, File.record_sid, File.name, File.size, File.content_type,
               File.storage_key, File.created_at)
        .where(*_file_criteria(backup)).order_by(File.uid)
        .execution_options(yield_per=1000)
    )
    before = archive.files
    progress.start_step(_count(session, File, _file_criteria(backup)))
    remote = files_storage.remote
    for row, source in opened_ahead(rows, partial(_open_blob, files_storage, read_small_ahead=remote),
                                    depth=OPEN_AHEAD if remote else 0,
                                    size=lambda row: row.size, max_bytes_ahead=OPEN_AHEAD_BYTES):
        with source:
            archive.add_stream(
                file_entry_name(backup.organization_sid, row.uid, row.name), source,
                declared_size=row.size, modified=row.created_at, uid=row.uid, original_name=row.name,
                record_sid=row.record_sid, content_type=row.content_type,
                storage_key=row.storage_key, created_at=row.created_at.isoformat(),
            )
        progress.advance()
    progress.end_step()
    return archive.files - before


def finish_backup(session: Session, sid: str, sealed: SealedArchive, *, run_id: str | None,
                  file_path: str, pricing: Pricing, now: datetime | None = None,
                  lock: Callable[[datetime], None] | None = None) -> Backup:
    """Mark the backup Completed, charged by its real size; it expires `retention_days` after
    completion, so a long backup is never due before it can be downloaded. Commits.

    `lock` is handed the expiry date before the commit (Object Lock of the archive): a backup
    is never Completed with its archive unlocked, and one whose lock failed stays In Progress.

    Only a backup still In Progress and held by `run_id` is completed: one reaped to Error
    meanwhile, or taken over by a retry, is refused with a PermanentError and left as it is
    (an archive this run committed is then an Error backup's, which the expiry flow removes).
    Idempotent for the run that completed it, so a retried task that failed after its commit
    does not fail the backup's run.
    """
    now = now or utcnow()
    backup = get_backup(session, sid)
    expires = now + timedelta(days=backup.retention_days or pricing.retention_days)
    completed = beat(
        session, sid, run_id, status=BackupStatus.COMPLETED, versions=sealed.versions,
        files=sealed.files, file_size=sealed.size, file_path=file_path, date_completed=now,
        date_expired=expires, cost=pricing.creation_cost(sealed.size),
        progress_done=Backup.progress_total, error=None,
    )
    if not completed:
        session.rollback()
        session.refresh(backup)
        if backup.status is BackupStatus.COMPLETED and backup.flow_run_id == run_id:
            return backup
        reason = f" ({backup.error})" if backup.error else ""
        raise PermanentError(f"backup {sid} is {backup.status.label}{reason} and no longer held by "
                             "this run; it was not marked Completed")
    if lock is not None:
        try:
            lock(expires)
        except Exception:
            session.rollback()
            raise
    session.commit()
    session.refresh(backup)
    return backup


def fail_backup(session: Session, sid: str, reason: str) -> bool:
    """Turn an In Progress backup into Error with `reason`; a finished backup is left alone.

    `heartbeat_at` keeps the run's last sign of life. Returns whether the row changed. Commits.
    """
    result = session.execute(
        update(Backup)
        .where(Backup.sid == sid, Backup.status == BackupStatus.IN_PROGRESS)
        .values(status=BackupStatus.ERROR, error=reason)
    )
    session.commit()
    return bool(result.rowcount)


def verify_stored_archive(backups_storage: Storage, key: str,
                          limits: ArchiveLimits | None = None) -> VerifyReport:
    """Read a sealed archive back from where it was written and check it against its manifest
    under the limits a restore will apply (an archive that could not be restored is no backup);
    a bad archive is removed so nothing that looks complete is left behind."""
    with backups_storage.open_read(key) as source:
        report = verify_archive(source, label=key, limits=limits)
    if not report.ok:
        backups_storage.delete(key)
        raise PermanentError(f"archive {key} failed verification after writing: "
                             + "; ".join(report.problems[:3]))
    return report
