"""Reading an archive in one pass, with memory flat in its number of entries.

This is for archives laid out as labvault writes them: entries in manifest order from the
archive's first byte, the manifest last, one manifest entry per line, stored or deflated. The
central directory is streamed (per entry only its offset, compressed size, method, CRC and size
are kept: about 30 bytes), the manifest's entry lines are validated and spilled to a temporary
file, then every entry is read in order and checked against its manifest line. Entries must
tile the archive (each begins where the one before ended, the manifest ends where the directory
begins), so no byte is read twice. Names, sizes and CRCs of the directory and of what was read
are folded into one digest each, which must agree. Verification (`scan_archive`) and restore
(`open_laid_out`) both read this way; `verify.ArchiveReader` is the full check for any other
zip.
"""

from __future__ import annotations

import hashlib
from array import array
from collections.abc import Iterator
from typing import Any, BinaryIO

from labvault.archive.manifest_reader import Manifest, read_manifest
from labvault.archive.manifest_schema import FileEntry, ManifestHeader, VersionEntry
from labvault.archive.rules import (
    MAX_MANIFEST_BYTES,
    ArchiveLimits,
    VerifyReport,
    is_manifest_name,
    organization_folder_of,
    unsafe_name_reason,
)
from labvault.errors import InvalidInputError
from labvault.zipstream.directory import (
    DirectoryRecord,
    ZipStructureError,
    directory_location,
    directory_records,
)
from labvault.zipstream.entries import EntryReader
from labvault.zipstream.format import DEFLATED, FLAG_ENCRYPTED, STORED
from labvault.zipstream.writer import NameHashes


class NotLaidOut(Exception):
    """The directory is not as labvault writes it: the full check must read this archive."""


class ArchiveRefused(InvalidInputError):
    """The archive is in labvault's layout but wrong; the message names the entry. `entries`
    is how many the directory holds (0 where it was not read to its end)."""

    def __init__(self, message: str, entries: int = 0) -> None:
        super().__init__(message)
        self.entries = entries


def scan_archive(source: BinaryIO, *, label: str, limits: ArchiveLimits) -> VerifyReport | None:
    """The report of a clean archive in labvault's layout, or None to ask for the full check.

    A problem in an archive small enough for the full check is handed to it, which names every
    problem; in a larger one, the first problem found is reported as it is, naming the entry.
    """
    try:
        archive = LaidOutArchive(source, label, limits)
    except (NotLaidOut, ZipStructureError):  # the full check says what is wrong with the zip
        return None
    except ArchiveRefused as exc:
        return _first_problem(label, str(exc), exc.entries, limits)
    try:
        return archive.verify()
    except (InvalidInputError, ZipStructureError) as exc:
        return _first_problem(label, str(exc), archive.report.entries, limits)
    finally:
        archive.close()


def _first_problem(label: str, problem: str, entries: int, limits: ArchiveLimits) -> VerifyReport | None:
    if entries <= limits.max_unordered_entries:
        return None
    return VerifyReport(source=label, entries=entries, problems=[problem])


def open_laid_out(source: BinaryIO, *, label: str, limits: ArchiveLimits) -> LaidOutArchive | None:
    """The archive opened for reading entry by entry, or None when it is not in labvault's
    layout. Raises `InvalidInputError` when its directory or manifest is wrong."""
    try:
        return LaidOutArchive(source, label, limits)
    except NotLaidOut:
        return None
    except ZipStructureError as exc:
        raise ArchiveRefused(str(exc)) from None


def _fold(digest: Any, name: str, size: int, crc: int) -> None:
    digest.update(b"%s\0%d\0%d\n" % (name.encode("utf-8"), size, crc))


class LaidOutArchive:
    """An archive in labvault's layout whose directory and manifest passed the rules; its
    entries are then read in order (`entries_with_bytes`). Close it to drop the spilled manifest
    lines."""

    def __init__(self, source: BinaryIO, label: str, limits: ArchiveLimits) -> None:
        self.source = source
        self.limits = limits
        self.report = VerifyReport(source=label)
        self.location = directory_location(source)
        self.offsets = array("Q")
        self.compressed = array("Q")
        self.sizes = array("Q")
        self.crcs = array("L")
        self.flags = array("H")
        self.methods = bytearray()
        self.directory_digest = hashlib.blake2b()
        self.folder = ""  # the organization's top folder, set as the manifest is read
        try:
            record = self._scan_directory()
            self._manifest = self._read_manifest(record)
        except (InvalidInputError, ZipStructureError) as exc:
            raise ArchiveRefused(str(exc), self.location.entries) from None
        self.manifest_record = record

    @property
    def header(self) -> ManifestHeader:
        return self._manifest.header

    @property
    def organization_sid(self) -> str:
        return self._manifest.organization_sid

    def close(self) -> None:
        self._manifest.close()

    def manifest_entries(self) -> Iterator[VersionEntry | FileEntry]:
        """The manifest's entries, parsed one at a time."""
        return self._manifest.entries()

    def verify(self) -> VerifyReport:
        """Read every entry once; any disagreement raises, naming the entry."""
        for _, chunks in self.entries_with_bytes():
            for _ in chunks:
                pass
        return self.report

    def _scan_directory(self) -> DirectoryRecord:
        """Every directory record passes the name, duplicate and bomb rules, in the order of
        their offsets from the first byte; the manifest is last."""
        names = NameHashes()
        declared = 0
        manifest: DirectoryRecord | None = None
        previous_offset = -1
        for record in directory_records(self.source, self.location):
            if (manifest is not None or record.header_offset <= previous_offset
                    or (previous_offset < 0 and record.header_offset != 0)
                    or not names.add(record.name)):  # a repeated hash: let the full check decide
                raise NotLaidOut
            previous_offset = record.header_offset
            if record.flags & FLAG_ENCRYPTED:
                raise ArchiveRefused(f"entry {record.name!r} is encrypted; labvault archives never are")
            if record.method not in (STORED, DEFLATED):
                raise ArchiveRefused(f"entry {record.name!r} uses compression method {record.method}; "
                                     "only stored and deflated are read")
            reason = unsafe_name_reason(record.name, record.external_attr)
            if reason:
                raise ArchiveRefused(f"entry {record.name!r} {reason}")
            if self.limits.is_bomb(record.size, record.compressed):
                raise ArchiveRefused(f"entry {record.name!r} expands "
                                     f"{record.size // max(record.compressed, 1)}-fold: refused as a ZIP bomb")
            declared += record.size
            self.report.entries += 1
            if is_manifest_name(record.name):
                manifest = record
                continue
            self.offsets.append(record.header_offset)
            self.compressed.append(record.compressed)
            self.sizes.append(record.size)
            self.crcs.append(record.crc)
            self.flags.append(record.flags)
            self.methods.append(record.method)
            _fold(self.directory_digest, record.name, record.size, record.crc)
        if manifest is None:
            raise NotLaidOut
        problem = self.limits.total_problem(declared, self.location.archive_size)
        if problem:
            raise ArchiveRefused(problem)
        if manifest.size > MAX_MANIFEST_BYTES:
            raise ArchiveRefused(f"manifest of {manifest.size} bytes is over the limit of {MAX_MANIFEST_BYTES}")
        return manifest

    def _read_manifest(self, record: DirectoryRecord) -> Manifest:
        reader = EntryReader(self.source, record, bound=self.location.offset)
        manifest = read_manifest(reader.chunks(record.size), declared_size=record.size,
                                 max_entries=len(self.offsets))
        if reader.end != self.location.offset:
            manifest.close()
            raise ArchiveRefused("the manifest does not end where the central directory begins "
                                 "(bytes hidden between them)")
        folder = organization_folder_of(record.name, manifest.organization_sid)
        if folder is None:
            manifest.close()
            raise ArchiveRefused(f"manifest is at {record.name!r} but names organization "
                                 f"{manifest.organization_sid!r}")
        self.folder = folder
        return manifest

    def _record(self, index: int, name: str) -> DirectoryRecord:
        return DirectoryRecord(name, self.flags[index], self.methods[index], self.crcs[index],
                               self.compressed[index], self.sizes[index], self.offsets[index], 0)

    def entries_with_bytes(self) -> Iterator[tuple[VersionEntry | FileEntry, Iterator[bytes]]]:
        """Each entry in order: its manifest entry and its bytes, checked as they end (size,
        SHA-256, CRC, where it ends); the whole archive is checked against the manifest after
        the last one. Each entry's bytes must be read to their end before the next entry is
        asked for."""
        organization = self.organization_sid
        read_digest = hashlib.blake2b()
        kinds = {"version": 0, "file": 0}
        total = 0
        index = -1
        position = 0
        for index, entry in enumerate(self.manifest_entries()):
            if index >= len(self.offsets):
                raise ArchiveRefused("the manifest lists more entries than the archive holds")
            if not entry.path.startswith(f"{self.folder}/"):
                raise ArchiveRefused(f"manifest entry {entry.path!r} is outside organization {organization!r}")
            if self.offsets[index] != position:
                raise ArchiveRefused(f"entry {entry.path!r} overlaps the entry before it or leaves a gap: "
                                     "entries must tile the archive")
            reader = EntryReader(self.source, self._record(index, entry.path), bound=self.manifest_record.header_offset)
            yield entry, self._checked_chunks(reader, entry, read_digest)
            assert reader.end is not None  # the caller read the entry to its end
            position = reader.end
            kinds[entry.kind] += 1
            total += entry.size
        if position != self.manifest_record.header_offset:
            raise ArchiveRefused("the entries do not end where the manifest begins (bytes hidden between them)")
        counts = self.header.counts
        if (index + 1 != len(self.offsets) or read_digest.digest() != self.directory_digest.digest()
                or (counts.versions, counts.files) != (kinds["version"], kinds["file"])
                or self.header.total_bytes != total):
            raise ArchiveRefused("the archive's entries do not match its manifest (names, sizes, CRCs, "
                                 "counts or total bytes)")
        self.report.organization_sid = organization
        self.report.backup_sid = self.header.backup.sid
        self.report.versions, self.report.files = kinds["version"], kinds["file"]
        self.report.total_bytes = total

    def _checked_chunks(self, reader: EntryReader, entry: VersionEntry | FileEntry,
                        read_digest: Any) -> Iterator[bytes]:
        digest = hashlib.sha256()
        read = 0
        for chunk in reader.chunks(entry.size):
            digest.update(chunk)
            read += len(chunk)
            yield chunk
        if read != entry.size or digest.hexdigest() != entry.sha256:
            raise ArchiveRefused(f"entry {entry.path!r} does not match its manifest line (size or SHA-256)")
        _fold(read_digest, entry.path, read, reader.record.crc)
