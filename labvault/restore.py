"""Restoring an archive into a database and a files store: verified first, all or nothing, and
never touching what the archive's organization does not own.

Pass one verifies the whole archive (structure, manifest, every byte); nothing is written unless
it passes. Then the plan is checked against every manifest entry, at flat memory (an on-disk
scratch index for the archive's own duplicates, look-ups in batches for the target): every
storage key lies under the archive's organization; no uid, storage key or version sid is
claimed twice; nothing the archive names belongs to another organization of the target; and
what the target already holds is refused, skipped (`--merge skip`) or replaced (`--merge
overwrite`). Pass two writes rows in one transaction and blobs into a staging area
(`restore_staging`), checking every byte again as it streams. Only after the transaction
commits are staged blobs moved onto their keys, so any failure before that leaves every old
byte and row as it was, and a restore killed at any point can simply be run again.
"""

from __future__ import annotations

import enum
import errno
import sqlite3
import tempfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import BinaryIO, Protocol, TypeVar

from sqlalchemy import delete, insert, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from labvault.archive.manifest_schema import (
    MAX_VERSION_DOCUMENT_BYTES,
    FileEntry,
    ManifestHeader,
    VersionEntry,
    parse_version_document,
)
from labvault.archive.scan import ArchiveRefused, open_laid_out
from labvault.archive.verify import ArchiveLimits, ArchiveReader, verify_archive
from labvault.db.models import File, Organization, Record, RestoreRun, Version
from labvault.errors import InvalidInputError, PermanentError, TransientError
from labvault.restore_staging import Staging, recover_staging
from labvault.storage.store import PARTIAL_SUFFIX, Storage, check_key
from labvault.zipstream.directory import ZipStructureError

BATCH = 1000  # manifest entries per look-up in the target, versions per INSERT
PENDING_VERSION_BYTES = 8 * 1024 * 1024  # versions held for one INSERT, as JSON read
Entry = VersionEntry | FileEntry
T = TypeVar("T")


class MergePolicy(str, enum.Enum):
    """What to do with rows and blobs the target already has."""

    SKIP = "skip"  # keep what is there, add what is missing; no existing byte is written
    OVERWRITE = "overwrite"  # replace what is there with the archive's


@dataclass
class RestoreReport:
    source: str
    organization_sid: str
    versions: int = 0
    files: int = 0
    records: int = 0
    skipped: int = 0
    bytes: int = 0


def _refused(report_problems: list[str], label: str) -> InvalidInputError:
    shown = "; ".join(report_problems[:3])
    more = f" (and {len(report_problems) - 3} more)" if len(report_problems) > 3 else ""
    return InvalidInputError(f"archive {label} failed verification: {shown}{more}; nothing was restored")


class _Entries(Protocol):
    """An archive opened for restore: its manifest and its entries with their checked bytes."""

    @property
    def header(self) -> ManifestHeader | None: ...

    def manifest_entries(self) -> Iterator[Entry]: ...
    def entries_with_bytes(self) -> Iterator[tuple[Entry, Iterator[bytes]]]: ...
    def close(self) -> None: ...


def _batches(items: Iterable[T]) -> Iterator[list[T]]:
    batch: list[T] = []
    for item in items:
        batch.append(item)
        if len(batch) == BATCH:
            yield batch
            batch = []
    if batch:
        yield batch


def _version_sid(entry: VersionEntry) -> str:
    """The manifest's sid, else the one the path names (`<sid>.json`, as every archive before
    issue 18 and most since say it)."""
    return entry.sid or entry.path.rsplit("/", 1)[-1].removesuffix(".json")


def storage_key(entry: FileEntry, organization: str) -> str:
    """Where a file entry's blob goes: a plain key under the archive's own organization."""
    key = entry.storage_key or f"{organization}/{entry.uid}"
    try:
        check_key(key)
    except InvalidInputError as exc:
        raise InvalidInputError(f"entry {entry.path!r}: {exc}; nothing was restored") from None
    if not key.startswith(f"{organization}/"):
        raise InvalidInputError(f"entry {entry.path!r}: storage key {key!r} is outside organization "
                                f"{organization!r}; nothing was restored")
    if key.endswith(PARTIAL_SUFFIX):
        raise InvalidInputError(f"entry {entry.path!r}: storage key {key!r} ends in {PARTIAL_SUFFIX}, which "
                                "the files store keeps for unfinished writes; nothing was restored")
    return key


def foreign(organization: str, what: str, value: str, owner: str) -> InvalidInputError:
    """The refusal of an archive naming what another organization of the target owns."""
    return InvalidInputError(f"{what} {value!r} belongs to organization {owner!r} in the target, not to "
                             f"the archive's {organization!r}; nothing was restored")


class _Plan:
    """What pass two may write, decided from the whole manifest before anything is written.

    The archive's own uids, storage keys and version sids go into a scratch SQLite file (exact,
    on disk, whatever their number); the entries to skip under `--merge skip` are kept there too.
    """

    def __init__(self, session: Session, files_storage: Storage, organization: str,
                 merge: MergePolicy | None, folder: Path) -> None:
        self.session = session
        self.files_storage = files_storage
        self.organization = organization
        self.merge = merge
        self.scratch = sqlite3.connect(folder / "plan.db")
        self.scratch.executescript(
            "CREATE TABLE claim (kind TEXT, value TEXT, path TEXT, PRIMARY KEY (kind, value));"
            "CREATE TABLE skip (uid TEXT PRIMARY KEY);")
        self.taken: set[str] = set()
        self.folders: dict[str, bool] = {}  # folder key -> whether the target holds a file there
        self.file_bytes = 0  # what the files store must take: every file not skipped

    def close(self) -> None:
        self.scratch.close()

    def check(self, entries: Iterable[Entry]) -> None:
        """Raise `InvalidInputError` naming the first entry the archive may not restore."""
        if self.merge is None and self.session.get(Organization, self.organization) is not None:
            self.taken.add(f"organization {self.organization!r}")
        for batch in _batches(entries):
            versions = [e for e in batch if isinstance(e, VersionEntry)]
            files = [e for e in batch if isinstance(e, FileEntry)]
            for entry in versions:
                self._claim("version sid", _version_sid(entry), entry.path)
            for entry in files:
                self._claim("uid", entry.uid, entry.path)
                self._claim_key(storage_key(entry, self.organization), entry.path)
            self._check_versions(versions)
            self._check_files(files)
        if self.taken:
            raise InvalidInputError(
                f"the target already holds {', '.join(sorted(self.taken))}; restore into an empty target "
                "or pass --merge skip (keep what is there) or --merge overwrite (replace it)")
        self.scratch.commit()

    def _claim(self, kind: str, value: str, path: str) -> None:
        try:
            self.scratch.execute("INSERT INTO claim VALUES (?, ?, ?)", (kind, value, path))
        except sqlite3.IntegrityError:
            (first,) = self.scratch.execute("SELECT path FROM claim WHERE kind = ? AND value = ?",
                                            (kind, value)).fetchone()
            raise InvalidInputError(f"manifest entries {first!r} and {path!r} both claim {kind} {value!r}; "
                                    "nothing was restored") from None

    def _claim_key(self, key: str, path: str) -> None:
        """A file key, and the folders above it: one entry's file may not be another's folder."""
        self._claim("storage key", key, path)
        if self._claimed("folder", key):
            raise InvalidInputError(f"entry {path!r}: storage key {key!r} is a folder of another entry's key; "
                                    "nothing was restored")
        parts = key.split("/")
        for depth in range(2, len(parts)):
            folder = "/".join(parts[:depth])
            if self._claimed("storage key", folder):
                raise InvalidInputError(f"entry {path!r}: storage key {key!r} lies under {folder!r}, another "
                                        "entry's file; nothing was restored")
            self.scratch.execute("INSERT OR IGNORE INTO claim VALUES ('folder', ?, ?)", (folder, path))

    def _claimed(self, kind: str, value: str) -> bool:
        return self.scratch.execute("SELECT 1 FROM claim WHERE kind = ? AND value = ?",
                                    (kind, value)).fetchone() is not None

    def _check_place(self, entry: FileEntry, key: str) -> None:
        """The key can hold a file in the target store: it is no folder there, and no folder
        above it is a file (a blob written there would land elsewhere or not at all)."""
        if not self.files_storage.is_file(key) and self.files_storage.exists(key):
            raise InvalidInputError(f"entry {entry.path!r}: storage key {key!r} is a folder in the target "
                                    "files store; nothing was restored")
        parts = key.split("/")
        for depth in range(1, len(parts)):
            folder = "/".join(parts[:depth])
            if folder not in self.folders:
                self.folders[folder] = self.files_storage.is_file(folder)
            if self.folders[folder]:
                raise InvalidInputError(f"entry {entry.path!r}: storage key {key!r} lies under {folder!r}, a "
                                        "file in the target files store; nothing was restored")

    def _check_versions(self, versions: list[VersionEntry]) -> None:
        for entry in versions:
            if entry.size > MAX_VERSION_DOCUMENT_BYTES:
                raise InvalidInputError(f"version document {entry.path!r} is {entry.size} bytes, over the "
                                        f"{MAX_VERSION_DOCUMENT_BYTES} a version may have; nothing was restored")
        sids = [_version_sid(entry) for entry in versions]
        if not sids:
            return
        for sid, owner in self.session.execute(
                select(Version.sid, Version.organization_sid).where(Version.sid.in_(sids))):
            if owner != self.organization:
                raise foreign(self.organization, "version", sid, owner)
            if self.merge is None:
                self.taken.add("versions with the same sids")

    def _check_files(self, files: list[FileEntry]) -> None:
        if not files:
            return
        by_uid = {entry.uid: entry for entry in files}
        keys = {storage_key(entry, self.organization): entry for entry in files}
        existing = {uid: (owner, key) for uid, owner, key in self.session.execute(
            select(File.uid, File.organization_sid, File.storage_key).where(File.uid.in_(list(by_uid))))}
        key_users = {key: (uid, owner) for key, uid, owner in self.session.execute(
            select(File.storage_key, File.uid, File.organization_sid).where(File.storage_key.in_(list(keys))))}
        record_owners = dict(self.session.execute(
            select(Record.sid, Record.organization_sid).where(
                Record.sid.in_({e.record_sid for e in files if e.record_sid}))).all())
        for record_sid, owner in record_owners.items():
            if owner != self.organization:
                raise foreign(self.organization, "record", record_sid, owner)
        for key, entry in keys.items():
            self._check_place(entry, key)
            conflict = self._file_conflict(entry, key, existing.get(entry.uid), key_users.get(key))
            if conflict is None or self.merge is not MergePolicy.SKIP:
                self.file_bytes += entry.size
            if conflict is None:
                continue
            if self.merge is MergePolicy.SKIP:
                self.scratch.execute("INSERT INTO skip VALUES (?)", (entry.uid,))
            elif self.merge is None:
                self.taken.add(conflict)
            else:
                raise InvalidInputError(f"entry {entry.path!r}: {conflict} that --merge overwrite would "
                                        "not replace (another file's); nothing was restored")

    def _file_conflict(self, entry: FileEntry, key: str, row: tuple[str, str] | None,
                       key_user: tuple[str, str] | None) -> str | None:
        """What in the target collides with this file entry, or None. Under overwrite only
        the same file (same uid, same key) may be replaced: a collision with another file is
        named so the caller refuses it."""
        if row is not None:
            owner, existing_key = row
            if owner != self.organization:
                raise foreign(self.organization, "file", entry.uid, owner)
            if existing_key != key and self.merge is not MergePolicy.SKIP:
                raise InvalidInputError(f"entry {entry.path!r}: file {entry.uid!r} is stored under "
                                        f"{existing_key!r} in the target, the archive says {key!r}; "
                                        "nothing was restored")
            return "files with the same uids" if self.merge is not MergePolicy.OVERWRITE else None
        if key_user is not None:
            uid, owner = key_user
            if owner != self.organization:
                raise foreign(self.organization, "storage key", key, owner)
            return f"a file ({uid!r}) under storage key {key!r}"
        if self.files_storage.is_file(key):
            return "blobs under the same storage keys" if self.merge is None else (
                None if self.merge is MergePolicy.OVERWRITE else "a blob")
        return None

    def skips(self, uid: str) -> bool:
        return self.scratch.execute("SELECT 1 FROM skip WHERE uid = ?", (uid,)).fetchone() is not None


class _Restorer:
    """Pass two: rows into one session, blobs into staging, promoted by the caller after commit."""

    def __init__(self, session: Session, staging: Staging, header: ManifestHeader,
                 report: RestoreReport, plan: _Plan) -> None:
        self.session = session
        self.staging = staging
        self.header = header
        self.report = report
        self.plan = plan
        self.merge = plan.merge
        self.records: set[str] = set(session.scalars(
            select(Record.sid).where(Record.organization_sid == report.organization_sid)))
        self.pending_versions: list[dict[str, object]] = []
        self.pending_bytes = 0

    def entry(self, entry: Entry, chunks: Iterator[bytes]) -> None:
        """One entry of the archive, whichever its kind."""
        if isinstance(entry, VersionEntry):
            self.version(entry, b"".join(chunks))
        else:
            self.file(entry, chunks)

    def version(self, entry: VersionEntry, data: bytes) -> None:
        self.pending_bytes += len(data)
        document = parse_version_document(data, path=entry.path)
        if _version_sid(entry) != document.sid:
            raise InvalidInputError(f"version document {entry.path!r} names another sid, {document.sid!r}")
        self.pending_versions.append({
            "sid": document.sid, "record_sid": document.record_sid,
            "organization_sid": self.report.organization_sid, "number": document.number,
            "data": document.data, "created_at": document.created_at, "created_by": document.created_by})
        if len(self.pending_versions) >= BATCH or self.pending_bytes >= PENDING_VERSION_BYTES:
            self.insert_versions()

    def insert_versions(self) -> None:
        """The versions read so far, inserted in one statement: one by one through the ORM,
        restore ran at about 4,000 versions/s. Versions the target already has (of this
        organization: the plan refused any other's) are kept (`--merge skip`) or replaced."""
        rows, self.pending_versions, self.pending_bytes = self.pending_versions, [], 0
        if not rows:
            return
        sids = [row["sid"] for row in rows]
        existing = set(self.session.scalars(select(Version.sid).where(
            Version.sid.in_(sids), Version.organization_sid == self.report.organization_sid)))
        if existing and self.merge is MergePolicy.SKIP:
            self.report.skipped += len(existing)
            rows = [row for row in rows if row["sid"] not in existing]
        elif existing:
            self.session.execute(delete(Version).where(Version.sid.in_(existing)))
        self._ensure_records({str(row["record_sid"]) for row in rows})
        if rows:
            self.session.execute(insert(Version), rows)
        self.report.versions += len(rows)

    def _ensure_records(self, sids: set[str]) -> None:
        """Records the rows point to exist, made if missing; one of another organization is
        refused (versions may not be attached to what the archive does not own)."""
        missing = sids - self.records
        if not missing:
            return
        for sid, owner in self.session.execute(
                select(Record.sid, Record.organization_sid).where(Record.sid.in_(missing))):
            if owner != self.report.organization_sid:
                raise foreign(self.report.organization_sid, "record", sid, owner)
            missing.discard(sid)
        if missing:
            organization = self.report.organization_sid
            self.session.execute(insert(Record), [{"sid": sid, "organization_sid": organization, "name": sid}
                                                  for sid in sorted(missing)])
            self.report.records += len(missing)
        self.records |= sids

    def file(self, entry: FileEntry, chunks: Iterator[bytes]) -> None:
        key = storage_key(entry, self.report.organization_sid)
        if self.plan.skips(entry.uid):
            for _ in chunks:  # read anyway: the archive is checked to its end
                pass
            self.report.skipped += 1
            return
        try:
            pending = self.staging.open_write(key, entry.size)
        except InvalidInputError as exc:
            raise InvalidInputError(f"entry {entry.path!r}: {exc}") from None
        try:
            for chunk in chunks:
                pending.write(chunk)
        except BaseException:
            pending.abort()
            raise
        pending.commit()
        existing = self.session.get(File, entry.uid)
        if existing is not None:  # overwrite: the plan checked it is this organization's, same key
            self.session.delete(existing)
            self.session.flush()
        if entry.record_sid:
            self._ensure_records({entry.record_sid})
        self.session.add(File(
            uid=entry.uid, organization_sid=self.report.organization_sid,
            record_sid=entry.record_sid, name=entry.original_name, size=entry.size,
            content_type=entry.content_type, storage_key=key,
            created_at=entry.created_at or self.header.created,
        ))
        self.report.files += 1
        self.report.bytes += entry.size


def _open_entries(source: BinaryIO, label: str, limits: ArchiveLimits) -> _Entries:
    """The archive for pass two: read in one pass if laid out as labvault writes, else held."""
    laid_out = open_laid_out(source, label=label, limits=limits)
    if laid_out is not None:
        return laid_out
    source.seek(0)
    reader = ArchiveReader(source, label=label, limits=limits)
    if not reader.report.ok:
        reader.close()
        raise _refused(reader.report.problems, label)  # it changed between the passes
    return reader


def _check_room(files_storage: Storage, file_bytes: int, label: str) -> None:
    """Refuse an archive whose files the target store cannot hold, before writing any."""
    free = files_storage.free_bytes()
    if free is not None and file_bytes > free:
        raise InvalidInputError(f"archive {label} holds {file_bytes} bytes of files; the target files store "
                                f"has {free} bytes free; nothing was restored")


def restore_archive(open_source: Callable[[], BinaryIO], *, label: str, session: Session,
                    files_storage: Storage, organization_sid: str | None = None,
                    merge: MergePolicy | None = None, limits: ArchiveLimits | None = None,
                    stale_after: timedelta = timedelta(hours=1),
                    prepare_target: Callable[[], None] | None = None) -> RestoreReport:
    """Verify the archive, then restore its organization, records, versions and files. Commits.

    `open_source` is called once per pass (the archive is read twice: verify, then write).
    Nothing touches the target before the archive is verified: then `prepare_target` runs (the
    restore task creates the schema there, so a refused archive leaves no database behind) and
    staging left by an earlier restore into this target is settled (`recover_staging`).
    """
    limits = limits or ArchiveLimits()
    with open_source() as source:
        verified = verify_archive(source, label=label, limits=limits)
    if not verified.ok:
        raise _refused(verified.problems, label)
    organization = verified.organization_sid or ""
    if organization_sid is not None and organization_sid != organization:
        raise InvalidInputError(f"archive {label} holds organization {organization!r}, "
                                f"not {organization_sid!r}; nothing was restored")
    if prepare_target is not None:
        prepare_target()
    recover_staging(session, files_storage, stale_after=stale_after)
    session.commit()
    with open_source() as source, tempfile.TemporaryDirectory(prefix="labvault-restore-") as folder:
        archive = _open_entries(source, label, limits)
        plan = _Plan(session, files_storage, organization, merge, Path(folder))
        try:
            plan.check(archive.manifest_entries())
            header = archive.header
            assert header is not None  # verified above
            _check_room(files_storage, plan.file_bytes, label)
            report = RestoreReport(source=label, organization_sid=organization)
            staging = Staging(files_storage)
            _write(session, staging, archive, header, report, plan, label)
            _promote(staging, label)
            return report
        finally:
            plan.close()
            archive.close()


def _promote(staging: Staging, label: str) -> None:
    """Staged blobs onto their keys, now that the rows committed; if that fails midway, what
    is left is finished by the next restore into this target or by `labvault expire`."""
    try:
        staging.promote()
    except (OSError, TransientError) as exc:
        raise TransientError(f"archive {label} was restored, but moving its files into place failed: "
                             f"{exc}; the next restore into this target or `labvault expire` finishes "
                             f"it (staging {staging.prefix})") from exc


def _committed(session: Session, run_id: str) -> bool:
    """Whether the run's rows committed after all; when the database cannot say, the staging is
    kept (as if they had) and recovery decides by the `restore_runs` row later."""
    try:
        return session.get(RestoreRun, run_id) is not None
    except SQLAlchemyError:
        return True


def _write(session: Session, staging: Staging, archive: _Entries, header: ManifestHeader,
           report: RestoreReport, plan: _Plan, label: str) -> None:
    """Pass two, committed with its `restore_runs` row, or rolled back with its staging gone."""
    restorer = _Restorer(session, staging, header, report, plan)
    try:
        staging.begin()
        if session.get(Organization, report.organization_sid) is None:
            session.add(Organization(sid=report.organization_sid,
                                     name=header.organization.name or report.organization_sid))
            session.flush()
        for entry, chunks in archive.entries_with_bytes():
            restorer.entry(entry, chunks)
        restorer.insert_versions()
        session.add(RestoreRun(id=staging.run_id, organization_sid=report.organization_sid))
        if not staging.intact():
            raise TransientError("a clean-up removed this restore's staging while it ran (was it stopped "
                                 "for longer than LABVAULT_STALE_AFTER_MINUTES?); run the restore again")
        session.commit()
    except BaseException as exc:
        session.rollback()
        if _committed(session, staging.run_id):  # the commit went through, its reply did not
            raise TransientError(f"archive {label} was restored, but the database's reply to its commit "
                                 f"was lost ({type(exc).__name__}); the next restore into this target or "
                                 f"`labvault expire` moves its files into place") from exc
        staging.discard()
        if isinstance(exc, (ZipStructureError, ArchiveRefused)):
            raise InvalidInputError(f"archive {label} changed since it was verified: {exc}; "
                                    "nothing was restored") from None
        if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
            raise PermanentError(f"archive {label}: the target files store is full ({exc.strerror}); free "
                                 "some space and restore again; nothing was restored") from None
        if isinstance(exc, SQLAlchemyError):  # a value the target's columns cannot take
            reason = " ".join(str(getattr(exc, "orig", None) or exc).split())[:300]
            raise InvalidInputError(f"archive {label}: the target database refused a row: {reason}; "
                                    "nothing was restored") from None
        raise

