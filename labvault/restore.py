"""Restoring an archive into a database and a files store: verified first, all or nothing.

Pass one verifies the whole archive (structure, manifest, every byte); nothing is written unless
it passes. Pass two writes rows in one transaction and blobs under their storage keys, checking
every byte again as it streams; any failure rolls the rows back and removes the blobs it wrote.
Nothing is ever written by an entry's name, so no entry can land outside the target.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, BinaryIO

from sqlalchemy import select
from sqlalchemy.orm import Session

from labvault.errors import InvalidInputError, LabvaultError
from labvault.models import File, Organization, Record, Version
from labvault.storage import Storage, check_key
from labvault.verify import ArchiveLimits, ArchiveReader

FLUSH_EVERY = 1000


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


def _file_plan(reader: ArchiveReader, organization: str) -> list[dict[str, Any]]:
    """File entries with the storage key each goes to, every key checked before any write."""
    plan = []
    for path, entry in reader.entries.items():
        if entry.get("kind") != "file":
            continue
        key = entry.get("storage_key") or f"{organization}/{entry.get('uid')}"
        try:
            check_key(key)
        except InvalidInputError as exc:
            raise InvalidInputError(f"entry {path!r}: {exc}; nothing was restored") from exc
        if not entry.get("uid") or not isinstance(entry.get("original_name"), str):
            raise InvalidInputError(f"entry {path!r} has no uid or original name in the manifest")
        plan.append({**entry, "storage_key": key})
    return plan


def _check_target_is_free(session: Session, files_storage: Storage, organization: str,
                          versions: list[str], files: list[dict[str, Any]]) -> None:
    taken = []
    if session.get(Organization, organization) is not None:
        taken.append(f"organization {organization!r}")
    if versions and session.scalar(select(Version.sid).where(Version.sid.in_(versions[:10000])).limit(1)):
        taken.append("versions with the same sids")
    uids = [f["uid"] for f in files]
    if uids and session.scalar(select(File.uid).where(File.uid.in_(uids[:10000])).limit(1)):
        taken.append("files with the same uids")
    if any(files_storage.exists(f["storage_key"]) for f in files):
        taken.append("blobs under the same storage keys")
    if taken:
        raise InvalidInputError(
            f"the target already holds {', '.join(taken)}; restore into an empty target or pass "
            "--merge skip (keep what is there) or --merge overwrite (replace it)"
        )


def _version_row(document: dict[str, Any], organization: str) -> Version:
    try:
        return Version(sid=document["sid"], record_sid=document["record_sid"],
                       organization_sid=organization, number=int(document["number"]),
                       data=document["data"],
                       created_at=datetime.fromisoformat(document["created_at"]),
                       created_by=document.get("created_by"))
    except (KeyError, TypeError, ValueError) as exc:
        raise InvalidInputError(f"version document {document.get('sid')!r} is malformed: {exc}") from exc


class _Restorer:
    """Pass two: rows into one session, blobs into the files store, undone on failure."""

    def __init__(self, session: Session, files_storage: Storage, reader: ArchiveReader,
                 report: RestoreReport, merge: MergePolicy | None) -> None:
        self.session = session
        self.files_storage = files_storage
        self.reader = reader
        self.report = report
        self.merge = merge
        self.records: set[str] = set(session.scalars(select(Record.sid)))
        self.written_keys: list[str] = []

    def _ensure_record(self, sid: str | None) -> None:
        if sid is None or sid in self.records:
            return
        self.session.add(Record(sid=sid, organization_sid=self.report.organization_sid, name=sid))
        self.session.flush()
        self.records.add(sid)
        self.report.records += 1

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

    def versions(self) -> None:
        organization = self.report.organization_sid
        for path, entry in self.reader.entries.items():
            if entry.get("kind") != "version":
                continue
            document = json.loads(b"".join(self.reader.chunks(path)))
            row = _version_row(document, organization)
            if self._keep_existing(Version, row.sid):
                continue
            self._ensure_record(row.record_sid)
            self.session.add(row)
            self.report.versions += 1
            if self.report.versions % FLUSH_EVERY == 0:
                self.session.flush()

    def files(self, plan: list[dict[str, Any]]) -> None:
        for entry in plan:
            if self._keep_existing(File, entry["uid"]):
                continue
            pending = self.files_storage.open_write(entry["storage_key"], entry["size"])
            try:
                for chunk in self.reader.chunks(entry["path"]):
                    pending.write(chunk)
            except BaseException:
                pending.abort()
                raise
            pending.commit()
            self.written_keys.append(entry["storage_key"])
            self._ensure_record(entry.get("record_sid"))
            self.session.add(File(
                uid=entry["uid"], organization_sid=self.report.organization_sid,
                record_sid=entry.get("record_sid"), name=entry["original_name"], size=entry["size"],
                content_type=entry.get("content_type"), storage_key=entry["storage_key"],
                created_at=datetime.fromisoformat(entry["created_at"]) if entry.get("created_at")
                else datetime.fromisoformat(self.reader.manifest["created"]),
            ))
            self.report.files += 1
            self.report.bytes += entry["size"]

    def undo_blobs(self) -> None:
        for key in self.written_keys:
            self.files_storage.delete(key)


def restore_archive(open_source: Callable[[], BinaryIO], *, label: str, session: Session,
                    files_storage: Storage, organization_sid: str | None = None,
                    merge: MergePolicy | None = None,
                    limits: ArchiveLimits | None = None) -> RestoreReport:
    """Verify the archive, then restore its organization, records, versions and files. Commits.

    `open_source` is called once per pass (the archive is read twice: verify, then write).
    """
    with open_source() as source:
        reader = ArchiveReader(source, label=label, limits=limits)
        verified = reader.verify_contents()
        reader.close()
    if not verified.ok:
        raise _refused(verified.problems, label)
    organization = verified.organization_sid or ""
    if organization_sid is not None and organization_sid != organization:
        raise InvalidInputError(f"archive {label} holds organization {organization!r}, "
                                f"not {organization_sid!r}; nothing was restored")
    with open_source() as source:
        reader = ArchiveReader(source, label=label, limits=limits)
        try:
            if not reader.report.ok:
                raise _refused(reader.report.problems, label)  # it changed between the passes
            plan = _file_plan(reader, organization)
            versions = [e["path"].rsplit("/", 1)[-1].removesuffix(".json")
                        for e in reader.entries.values() if e.get("kind") == "version"]
            if merge is None:
                _check_target_is_free(session, files_storage, organization, versions, plan)
            report = RestoreReport(source=label, organization_sid=organization)
            restorer = _Restorer(session, files_storage, reader, report, merge)
            try:
                if session.get(Organization, organization) is None:
                    name = (reader.manifest.get("organization") or {}).get("name") or organization
                    session.add(Organization(sid=organization, name=name))
                    session.flush()
                restorer.versions()
                restorer.files(plan)
                session.commit()
            except BaseException as exc:
                session.rollback()
                restorer.undo_blobs()
                if isinstance(exc, ValueError) and not isinstance(exc, LabvaultError):
                    raise InvalidInputError(f"{exc}; nothing was restored") from exc
                raise
            return report
        finally:
            reader.close()
