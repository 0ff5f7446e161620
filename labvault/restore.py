"""Restoring an archive into a database and a files store: verified first, all or nothing.

Pass one verifies the whole archive (structure, manifest, every byte); nothing is written unless
it passes. Pass two checks every target key from the manifest, then writes rows in one
transaction and blobs under their storage keys, entry by entry in the archive's order, checking
every byte again as it streams; any failure rolls the rows back and removes the blobs it wrote.
Nothing is ever written by an entry's name, so no entry can land outside the target. Archives in
labvault's layout are read with memory flat in their number of entries (`archive_scan`); others
through `zipfile` (`verify.ArchiveReader`), which holds their directory and manifest.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any, BinaryIO, Protocol

from sqlalchemy import delete, insert, select
from sqlalchemy.orm import Session

from labvault.archive_scan import open_laid_out
from labvault.errors import InvalidInputError, LabvaultError
from labvault.models import File, Organization, Record, Version
from labvault.storage import Storage, check_key
from labvault.verify import ArchiveLimits, ArchiveReader, verify_archive

INSERT_BATCH = 1000  # versions per INSERT
SAMPLE_IDS = 10_000  # version sids and file uids looked up to tell a non-empty target


class MergePolicy(str, enum.Enum):
    """What to do with rows and blobs the target already has."""

    SKIP = "skip"  # keep what is there, add what is missing
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

    manifest: dict[str, Any]

    def manifest_entries(self) -> Iterator[dict[str, Any]]: ...
    def entries_with_bytes(self) -> Iterator[tuple[dict[str, Any], Iterator[bytes]]]: ...
    def close(self) -> None: ...


def _storage_key(entry: dict[str, Any], organization: str) -> str:
    """Where a file entry's blob goes; checked before any write."""
    key = entry.get("storage_key") or f"{organization}/{entry.get('uid')}"
    try:
        check_key(key)
    except InvalidInputError as exc:
        raise InvalidInputError(f"entry {entry.get('path')!r}: {exc}; nothing was restored") from exc
    if not entry.get("uid") or not isinstance(entry.get("original_name"), str):
        raise InvalidInputError(f"entry {entry.get('path')!r} has no uid or original name in the manifest")
    return key


def _check_plan(archive: _Entries, session: Session, files_storage: Storage, organization: str,
                *, must_be_free: bool) -> None:
    """Every file's target key is valid and (unless merging) the target holds none of what
    the archive would write. Streams the manifest: nothing of it is kept."""
    taken: list[str] = []
    if must_be_free and session.get(Organization, organization) is not None:
        taken.append(f"organization {organization!r}")
    versions: list[str] = []
    uids: list[str] = []
    blob_taken = False
    for entry in archive.manifest_entries():
        if entry.get("kind") == "version" and len(versions) < SAMPLE_IDS:
            versions.append(entry["path"].rsplit("/", 1)[-1].removesuffix(".json"))
        if entry.get("kind") != "file":
            continue
        key = _storage_key(entry, organization)
        if len(uids) < SAMPLE_IDS:
            uids.append(entry["uid"])
        blob_taken = blob_taken or (must_be_free and files_storage.exists(key))
    if not must_be_free:
        return
    if versions and session.scalar(select(Version.sid).where(Version.sid.in_(versions)).limit(1)):
        taken.append("versions with the same sids")
    if uids and session.scalar(select(File.uid).where(File.uid.in_(uids)).limit(1)):
        taken.append("files with the same uids")
    if blob_taken:
        taken.append("blobs under the same storage keys")
    if taken:
        raise InvalidInputError(
            f"the target already holds {', '.join(taken)}; restore into an empty target or pass "
            "--merge skip (keep what is there) or --merge overwrite (replace it)"
        )


def _version_values(document: dict[str, Any], organization: str) -> dict[str, Any]:
    """A version document as the row to insert; a malformed one is refused by its sid."""
    try:
        return {"sid": document["sid"], "record_sid": document["record_sid"],
                "organization_sid": organization, "number": int(document["number"]),
                "data": document["data"], "created_at": datetime.fromisoformat(document["created_at"]),
                "created_by": document.get("created_by")}
    except (KeyError, TypeError, ValueError) as exc:
        raise InvalidInputError(f"version document {document.get('sid')!r} is malformed: {exc}") from exc


class _Restorer:
    """Pass two: rows into one session, blobs into the files store, undone on failure."""

    def __init__(self, session: Session, files_storage: Storage, manifest: dict[str, Any],
                 report: RestoreReport, merge: MergePolicy | None) -> None:
        self.session = session
        self.files_storage = files_storage
        self.manifest = manifest
        self.report = report
        self.merge = merge
        self.records: set[str] = set(session.scalars(
            select(Record.sid).where(Record.organization_sid == report.organization_sid)))
        self.written_keys: list[str] = []
        self.pending_versions: list[dict[str, Any]] = []

    def _keep_existing(self, model: type, key: Any) -> bool:
        existing = self.session.get(model, key)
        if existing is None:
            return False
        if self.merge is MergePolicy.SKIP:
            self.report.skipped += 1
            return True
        self.session.delete(existing)
        self.session.flush()
        return False

    def entry(self, entry: dict[str, Any], chunks: Iterator[bytes]) -> None:
        """One entry of the archive, whichever its kind."""
        if entry.get("kind") == "version":
            self.version(entry["path"], b"".join(chunks))
        elif entry.get("kind") == "file":
            self.file(entry, chunks)
        else:
            raise InvalidInputError(f"entry {entry.get('path')!r} is of unknown kind {entry.get('kind')!r}")

    def version(self, path: str, data: bytes) -> None:
        try:
            document = json.loads(data)
        except ValueError as exc:
            raise InvalidInputError(f"version document {path!r} is not JSON: {exc}") from exc
        values = _version_values(document, self.report.organization_sid)
        if path.rsplit("/", 1)[-1] != f"{values['sid']}.json":
            raise InvalidInputError(f"version document {path!r} names another sid, {values['sid']!r}")
        self.pending_versions.append(values)
        if len(self.pending_versions) >= INSERT_BATCH:
            self.insert_versions()

    def insert_versions(self) -> None:
        """The versions read so far, inserted in one statement: one by one through the ORM,
        restore ran at about 4,000 versions/s. Versions the target already has are kept
        (`--merge skip`) or replaced, as one by one."""
        rows, self.pending_versions = self.pending_versions, []
        if not rows:
            return
        sids = [row["sid"] for row in rows]
        existing = set(self.session.scalars(select(Version.sid).where(Version.sid.in_(sids))))
        if existing and self.merge is MergePolicy.SKIP:
            self.report.skipped += len(existing)
            rows = [row for row in rows if row["sid"] not in existing]
        elif existing:
            self.session.execute(delete(Version).where(Version.sid.in_(existing)))
        self._ensure_records({row["record_sid"] for row in rows})
        if rows:
            self.session.execute(insert(Version), rows)
        self.report.versions += len(rows)

    def _ensure_records(self, sids: set[str]) -> None:
        missing = sids - self.records
        if missing:
            missing -= set(self.session.scalars(select(Record.sid).where(Record.sid.in_(missing))))
        if missing:
            organization = self.report.organization_sid
            self.session.execute(insert(Record), [{"sid": sid, "organization_sid": organization, "name": sid}
                                                  for sid in sorted(missing)])
            self.report.records += len(missing)
        self.records |= sids

    def file(self, entry: dict[str, Any], chunks: Iterator[bytes]) -> None:
        key = _storage_key(entry, self.report.organization_sid)
        if self._keep_existing(File, entry["uid"]):
            for _ in chunks:  # read anyway: the archive is checked to its end
                pass
            return
        pending = self.files_storage.open_write(key, entry["size"])
        try:
            for chunk in chunks:
                pending.write(chunk)
        except BaseException:
            pending.abort()
            raise
        pending.commit()
        self.written_keys.append(key)
        if entry.get("record_sid"):
            self._ensure_records({entry["record_sid"]})
        self.session.add(File(
            uid=entry["uid"], organization_sid=self.report.organization_sid,
            record_sid=entry.get("record_sid"), name=entry["original_name"], size=entry["size"],
            content_type=entry.get("content_type"), storage_key=key,
            created_at=datetime.fromisoformat(entry["created_at"]) if entry.get("created_at")
            else datetime.fromisoformat(self.manifest["created"]),
        ))
        self.report.files += 1
        self.report.bytes += entry["size"]

    def undo_blobs(self) -> None:
        for key in self.written_keys:
            self.files_storage.delete(key)


def _open_entries(source: BinaryIO, label: str, limits: ArchiveLimits) -> _Entries:
    """The archive for pass two: read in one pass if laid out as labvault writes, else by zipfile."""
    laid_out = open_laid_out(source, label=label, limits=limits)
    if laid_out is not None:
        return laid_out
    source.seek(0)
    reader = ArchiveReader(source, label=label, limits=limits)
    if not reader.report.ok:
        reader.close()
        raise _refused(reader.report.problems, label)  # it changed between the passes
    return reader


def restore_archive(open_source: Callable[[], BinaryIO], *, label: str, session: Session,
                    files_storage: Storage, organization_sid: str | None = None,
                    merge: MergePolicy | None = None,
                    limits: ArchiveLimits | None = None) -> RestoreReport:
    """Verify the archive, then restore its organization, records, versions and files. Commits.

    `open_source` is called once per pass (the archive is read twice: verify, then write).
    """
    with open_source() as source:
        verified = verify_archive(source, label=label, limits=limits)
    if not verified.ok:
        raise _refused(verified.problems, label)
    organization = verified.organization_sid or ""
    if organization_sid is not None and organization_sid != organization:
        raise InvalidInputError(f"archive {label} holds organization {organization!r}, "
                                f"not {organization_sid!r}; nothing was restored")
    with open_source() as source:
        archive = _open_entries(source, label, limits or ArchiveLimits())
        try:
            _check_plan(archive, session, files_storage, organization, must_be_free=merge is None)
            report = RestoreReport(source=label, organization_sid=organization)
            restorer = _Restorer(session, files_storage, archive.manifest, report, merge)
            try:
                if session.get(Organization, organization) is None:
                    name = (archive.manifest.get("organization") or {}).get("name") or organization
                    session.add(Organization(sid=organization, name=name))
                    session.flush()
                for entry, chunks in archive.entries_with_bytes():
                    restorer.entry(entry, chunks)
                restorer.insert_versions()
                session.commit()
            except BaseException as exc:
                session.rollback()
                restorer.undo_blobs()
                if isinstance(exc, ValueError) and not isinstance(exc, LabvaultError):
                    raise InvalidInputError(f"archive {label} changed since it was verified: {exc}; "
                                            "nothing was restored") from exc
                raise
            return report
        finally:
            archive.close()
