"""Verifying an archive: every entry read once and checked against the manifest.

A backup is only as good as its restore; this is the check both `backup verify` and restore run
first. It never trusts the archive: names, sizes, compression ratios and where every entry lies
are checked before bytes are read, and reads stop at the size the manifest declares.

An archive laid out as labvault writes it is read in one pass with flat memory
(`scan`). Any other zip (re-zipped by another tool, entries reordered) gets the full
check here, which holds its directory and the manifest's paths (about 500 bytes per entry, so
at most `ArchiveLimits.max_unordered_entries` entries) and names every problem it finds.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from typing import BinaryIO

from labvault.archive.manifest_reader import Manifest, read_manifest
from labvault.archive.manifest_schema import FileEntry, ManifestHeader, VersionEntry
from labvault.archive.rules import (
    MANIFEST_NAME,
    MAX_MANIFEST_BYTES,
    ArchiveLimits,
    VerifyReport,
    is_manifest_name,
    organization_folder_of,
    unsafe_name_reason,
)
from labvault.archive.scan import scan_archive
from labvault.errors import InvalidInputError
from labvault.zipstream.directory import (
    DirectoryRecord,
    ZipStructureError,
    directory_location,
    directory_records,
)
from labvault.zipstream.entries import EntryReader
from labvault.zipstream.format import DEFLATED, FLAG_ENCRYPTED, STORED

Entry = VersionEntry | FileEntry
MAX_PROBLEMS = 100


def _path_hash(path: str) -> bytes:
    return hashlib.blake2b(path.encode("utf-8", "surrogatepass"), digest_size=16).digest()


class ArchiveReader:
    """Checks an open zip's structure and manifest; then yields entries' bytes, verified."""

    def __init__(self, source: BinaryIO, *, label: str, limits: ArchiveLimits | None = None) -> None:
        self.source = source
        self.report = VerifyReport(source=label)
        self.limits = limits or ArchiveLimits()
        self.header: ManifestHeader | None = None
        self._manifest: Manifest | None = None
        self._unlisted = 0
        self.records: dict[str, DirectoryRecord] = {}
        self._bound = 0
        try:
            self._read_directory()
        except ZipStructureError as exc:
            self._problem(f"not a readable zip archive (truncated or corrupt): {exc}")
            return
        if not self.report.problems:
            self._check_tiling()
        if not self.report.problems:
            self._read_manifest()
        self._count_unlisted()

    def _count_unlisted(self) -> None:
        if self._unlisted:
            self.report.problems.append(f"(and {self._unlisted} more problems)")
            self._unlisted = 0

    def _problem(self, text: str) -> None:
        """One more problem; past `MAX_PROBLEMS` only counted, so a lying manifest of 100,000
        missing paths costs one line each for the first hundred."""
        if len(self.report.problems) < MAX_PROBLEMS:
            self.report.problems.append(text)
        else:
            self._unlisted += 1

    def _read_directory(self) -> None:
        location = directory_location(self.source)
        self._bound = location.offset
        if location.entries > self.limits.max_unordered_entries:
            self._problem(f"archive has {location.entries} entries and is not laid out as labvault "
                          f"writes archives; at most {self.limits.max_unordered_entries} can be checked "
                          "out of order")
            return
        declared = 0
        for record in directory_records(self.source, location):
            if record.name in self.records:
                self._problem(f"entry {record.name!r} appears twice")
            self.records[record.name] = record
            reason = unsafe_name_reason(record.name, record.external_attr)
            if reason:
                self._problem(f"entry {record.name!r} {reason}")
            if record.flags & FLAG_ENCRYPTED:
                self._problem(f"entry {record.name!r} is encrypted; labvault archives never are")
            if record.method not in (STORED, DEFLATED):
                self._problem(f"entry {record.name!r} uses compression method {record.method}; "
                              "only stored and deflated are read")
            if self.limits.is_bomb(record.size, record.compressed):
                self._problem(f"entry {record.name!r} expands {record.size // max(record.compressed, 1)}"
                              f"-fold: refused as a ZIP bomb")
            declared += record.size
        self.report.entries = len(self.records)
        problem = self.limits.total_problem(declared, location.archive_size)
        if problem:
            self._problem(problem)

    def _check_tiling(self) -> None:
        """Entries lie one after another from the first byte to the directory: none overlaps
        another (the overlapping-header bomb) and no bytes hide between them."""
        position = 0
        for record in sorted(self.records.values(), key=lambda r: r.header_offset):
            if record.header_offset != position:
                self._problem(f"entry {record.name!r} overlaps the entry before it or leaves a gap: "
                              "entries must tile the archive")
                return
            try:
                position = EntryReader(self.source, record, bound=self._bound).extent()
            except ZipStructureError as exc:
                self._problem(str(exc))
                return
        if position != self._bound:
            self._problem("bytes are hidden between the last entry and the central directory")

    def _read_manifest(self) -> None:
        manifests = [r for r in self.records.values() if is_manifest_name(r.name)]
        if len(manifests) != 1:
            self._problem(f"expected one <organization>/{MANIFEST_NAME}, found {len(manifests)}")
            return
        record = manifests[0]
        if record.size > MAX_MANIFEST_BYTES:
            self._problem(f"manifest of {record.size} bytes is over the limit of {MAX_MANIFEST_BYTES}")
            return
        reader = EntryReader(self.source, record, bound=self._bound)
        try:
            self._manifest = read_manifest(reader.chunks(record.size), declared_size=record.size,
                                           max_entries=self.limits.max_unordered_entries)
            self._check_manifest(self._manifest.header, record)
        except (InvalidInputError, ZipStructureError) as exc:
            self._problem(str(exc))

    def _check_manifest(self, header: ManifestHeader, record: DirectoryRecord) -> None:
        """The manifest against the directory. Paths are compared by 16-byte hashes: a small
        deflated manifest may list long paths, and only the directory's names (whose bytes are
        in the archive) are held as text."""
        organization = header.organization.sid
        folder = organization_folder_of(record.name, organization)
        self.header = header
        self.report.organization_sid = organization
        self.report.backup_sid = header.backup.sid
        names = {_path_hash(name) for name in self.records if name != record.name}
        listed: set[bytes] = set()
        total = 0
        kinds = {"version": 0, "file": 0}
        for entry in self.manifest_entries():
            kinds[entry.kind] += 1
            total += entry.size
            hashed = _path_hash(entry.path)
            if hashed in listed:
                self._problem(f"manifest lists {entry.path!r} twice")
            listed.add(hashed)
            if hashed not in names:
                self._problem(f"entry {entry.path!r} is in the manifest but missing from the archive")
            if not entry.path.startswith(f"{folder or organization}/"):
                self._problem(f"manifest entry {entry.path!r} is outside organization {organization!r}")
        if folder is None:
            self._problem(f"manifest is at {record.name!r} but names organization {organization!r}")
        for name in sorted(self.records):
            if name != record.name and _path_hash(name) not in listed:
                self._problem(f"entry {name!r} is not in the manifest")
        counts = header.counts
        if (counts.versions, counts.files) != (kinds["version"], kinds["file"]):
            self._problem(f"manifest counts {counts.versions} versions and {counts.files} files, but "
                          f"lists {kinds['version']} version and {kinds['file']} file entries")
        if header.total_bytes != total:
            self._problem("manifest total_bytes does not match the sum of its entries' sizes")

    def chunks(self, entry: Entry) -> Iterator[bytes]:
        """An entry's bytes in chunks, checked against the manifest as they stream: raises
        `ZipStructureError` naming the entry if its size, SHA-256 or CRC disagree."""
        digest = hashlib.sha256()
        size = 0
        reader = EntryReader(self.source, self.records[entry.path], bound=self._bound)
        for chunk in reader.chunks(entry.size):
            size += len(chunk)
            digest.update(chunk)
            yield chunk
        if size != entry.size:
            raise ZipStructureError(f"entry {entry.path!r} has {size} bytes, the manifest says {entry.size}")
        if digest.hexdigest() != entry.sha256:
            raise ZipStructureError(f"entry {entry.path!r}: SHA-256 differs from the manifest")

    def manifest_entries(self) -> Iterator[Entry]:
        """The manifest's entries, in its order."""
        return self._manifest.entries() if self._manifest is not None else iter(())

    def entries_with_bytes(self) -> Iterator[tuple[Entry, Iterator[bytes]]]:
        """Each entry in manifest order with its bytes, checked as they stream (`chunks`)."""
        for entry in self.manifest_entries():
            yield entry, self.chunks(entry)

    def verify_contents(self) -> VerifyReport:
        """Read every entry once; each one that disagrees with the manifest is a problem."""
        if self.report.problems:
            return self.report
        for entry in self.manifest_entries():
            try:
                for _ in self.chunks(entry):
                    pass
            except ZipStructureError as exc:
                self._problem(str(exc))
                continue
            self.report.total_bytes += entry.size
            self.report.versions += entry.kind == "version"
            self.report.files += entry.kind == "file"
        self._count_unlisted()
        return self.report

    def close(self) -> None:
        """Drop the spilled manifest."""
        if self._manifest is not None:
            self._manifest.close()


def verify_archive(source: BinaryIO, *, label: str, limits: ArchiveLimits | None = None) -> VerifyReport:
    """Every entry read once and checked against the manifest.

    An archive laid out as labvault writes it is checked in one pass with flat memory; any
    other zip gets the full check that names each problem.
    """
    limits = limits or ArchiveLimits()
    report = scan_archive(source, label=label, limits=limits)
    if report is not None:
        return report
    source.seek(0)
    reader = ArchiveReader(source, label=label, limits=limits)
    try:
        return reader.verify_contents()
    finally:
        reader.close()
