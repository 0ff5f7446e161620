"""Reading an archive in one pass, with memory flat in its number of entries.

This is for archives laid out as labvault writes them: entries in manifest order, the manifest
last, one manifest entry per line, stored or deflated. The central directory is streamed (per
entry only its offset, compressed size and method are kept: 17 bytes), the manifest's entry
lines are spilled to a temporary file, then every entry is read in order and checked against its
manifest line. Names, sizes and CRCs of the directory and of what was read are folded into one
digest each, which must agree. Verification (`scan_archive`) and restore (`open_laid_out`) both
read this way. It checks everything `verify.ArchiveReader` checks, but on anything unexpected or
wrong it gives up: verification then runs that full check, whose report names each problem.
"""

from __future__ import annotations

import hashlib
import json
import struct
import tempfile
import zlib
from array import array
from collections.abc import Iterator
from typing import IO, Any, BinaryIO

from labvault.archive_rules import (
    MANIFEST_NAME,
    MAX_MANIFEST_BYTES,
    ArchiveLimits,
    VerifyReport,
    is_manifest_name,
    unsafe_name_reason,
)
from labvault.zip_directory import DirectoryRecord, NotAZipError, directory_records
from labvault.zip_format import DEFLATED, FLAG_ENCRYPTED, FLAG_UTF8, LOCAL, LOCAL_SIGNATURE, STORED
from labvault.zip_stream import NameHashes

_READ_BYTES = 1024 * 1024
_ENTRIES_LINE = b'  "entries": ['
_ENTRIES_END = b"  ]"


class _Unexpected(ValueError):
    """Not as labvault writes archives, or wrong: verification falls back to the full check,
    restore (which verified first) refuses the archive as changed."""


_GIVE_UP = (_Unexpected, NotAZipError, zlib.error, struct.error, ValueError, KeyError, IndexError,
            TypeError, EOFError)


def scan_archive(source: BinaryIO, *, label: str, limits: ArchiveLimits) -> VerifyReport | None:
    """The report of a clean archive in labvault's layout, or None to ask for the full check."""
    archive = open_laid_out(source, label=label, limits=limits)
    if archive is None:
        return None
    try:
        return archive.verify()
    except _GIVE_UP:
        return None
    finally:
        archive.close()


def open_laid_out(source: BinaryIO, *, label: str, limits: ArchiveLimits) -> LaidOutArchive | None:
    """The archive opened for reading entry by entry, or None when it is not in labvault's
    layout (or its directory or manifest is wrong)."""
    try:
        return LaidOutArchive(source, label, limits)
    except _GIVE_UP:
        return None


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
        self.offsets = array("Q")
        self.compressed = array("Q")
        self.methods = bytearray()
        self.directory_digest = hashlib.blake2b()
        manifest = self._scan_directory()
        self._lines = tempfile.TemporaryFile()
        try:
            self.manifest = self._read_manifest(manifest, self._lines)
        except BaseException:
            self._lines.close()
            raise
        self.organization_sid: str = self.manifest["organization"]["sid"]

    def close(self) -> None:
        self._lines.close()

    def manifest_entries(self) -> Iterator[dict[str, Any]]:
        """The manifest's entry lines, parsed one at a time."""
        self._lines.seek(0)
        for line in self._lines:
            yield json.loads(line)

    def verify(self) -> VerifyReport:
        """Read every entry once; any disagreement raises (the caller falls back)."""
        for _, chunks in self.entries_with_bytes():
            for _ in chunks:
                pass
        return self.report

    def _scan_directory(self) -> DirectoryRecord:
        """Every directory record passes the name, duplicate and bomb rules; the manifest is last."""
        names = NameHashes()
        declared = 0
        manifest: DirectoryRecord | None = None
        for record in directory_records(self.source):
            if (manifest is not None or record.flags & FLAG_ENCRYPTED
                    or record.method not in (STORED, DEFLATED)
                    or unsafe_name_reason(record.name, record.external_attr)
                    or not names.add(record.name)  # a repeated hash: let the full check decide
                    or self.limits.is_bomb(record.size, record.compressed)):
                raise _Unexpected
            declared += record.size
            self.report.entries += 1
            if is_manifest_name(record.name):
                manifest = record
                continue
            self.offsets.append(record.header_offset)
            self.compressed.append(record.compressed)
            self.methods.append(record.method)
            _fold(self.directory_digest, record.name, record.size, record.crc)
        if manifest is None or declared > self.limits.max_total_bytes or manifest.size > MAX_MANIFEST_BYTES:
            raise _Unexpected
        return manifest

    def _read_manifest(self, record: DirectoryRecord, lines: IO[bytes]) -> dict[str, Any]:
        """The manifest without its entries; each entry line goes to `lines`, one per line."""
        header: list[bytes] = []
        tail: list[bytes] = []
        section = header
        pending = b""
        crc = read = 0
        for chunk in self._entry_chunks(record.header_offset, record.name, record.compressed,
                                        record.method, record.size):
            crc = zlib.crc32(chunk, crc)
            read += len(chunk)
            *complete, pending = (pending + chunk).split(b"\n")
            for line in complete:
                if section is header and line == _ENTRIES_LINE:
                    section = []  # the entry lines
                elif section is not header and section is not tail:
                    if line == _ENTRIES_END:
                        section = tail
                    elif line:
                        lines.write(line.strip().rstrip(b",") + b"\n")
                else:
                    section.append(line)
        if section is not tail or pending or crc != record.crc or read != record.size:
            raise _Unexpected
        manifest = json.loads(b"\n".join(header) + b'\n"entries": []\n' + b"\n".join(tail))
        organization = manifest["organization"]["sid"]
        if not isinstance(organization, str) or record.name != f"{organization}/{MANIFEST_NAME}":
            raise _Unexpected
        return manifest

    def entries_with_bytes(self) -> Iterator[tuple[dict[str, Any], Iterator[bytes]]]:
        """Each entry in order: its manifest line and its bytes, checked as they end (size,
        SHA-256, CRC); the whole archive is checked against the manifest after the last one.
        Each entry's bytes must be read to their end before the next entry is asked for."""
        organization = self.organization_sid
        read_digest = hashlib.blake2b()
        kinds = {"version": 0, "file": 0}
        total = 0
        index = -1
        for index, entry in enumerate(self.manifest_entries()):
            if index >= len(self.offsets):
                raise _Unexpected("the manifest lists more entries than the archive holds")
            path, size, kind = entry["path"], entry["size"], entry.get("kind")
            if (not isinstance(size, int) or isinstance(size, bool) or size < 0
                    or not path.startswith(f"{organization}/") or kind not in kinds):
                raise _Unexpected(f"manifest entry {path!r} is malformed")
            yield entry, self._checked_chunks(index, entry, read_digest)
            kinds[kind] += 1
            total += size
        if (index + 1 != len(self.offsets) or read_digest.digest() != self.directory_digest.digest()
                or self.manifest.get("counts") != {"versions": kinds["version"], "files": kinds["file"]}
                or self.manifest.get("total_bytes") != total):
            raise _Unexpected("the archive's entries do not match its manifest")
        self.report.organization_sid = organization
        self.report.backup_sid = (self.manifest.get("backup") or {}).get("sid")
        self.report.versions, self.report.files = kinds["version"], kinds["file"]
        self.report.total_bytes = total

    def _checked_chunks(self, index: int, entry: dict[str, Any], read_digest: Any) -> Iterator[bytes]:
        path, size = entry["path"], entry["size"]
        digest = hashlib.sha256()
        crc = read = 0
        for chunk in self._entry_chunks(self.offsets[index], path, self.compressed[index],
                                        self.methods[index], size):
            digest.update(chunk)
            crc = zlib.crc32(chunk, crc)
            read += len(chunk)
            yield chunk
        if read != size or digest.hexdigest() != entry.get("sha256"):
            raise _Unexpected(f"entry {path!r} does not match its manifest line")
        _fold(read_digest, path, read, crc)

    def _entry_chunks(self, offset: int, name: str, compressed: int, method: int,
                      limit: int) -> Iterator[bytes]:
        """An entry's bytes from its local header on, never more than `limit` of them."""
        self.source.seek(offset)
        fields = LOCAL.unpack(self.source.read(LOCAL.size))
        raw_name = self.source.read(fields[9])
        if fields[0] != LOCAL_SIGNATURE or raw_name.decode(
                "utf-8" if fields[2] & FLAG_UTF8 else "cp437") != name:
            raise _Unexpected(f"entry {name!r} has no local header where the directory says")
        self.source.seek(fields[10], 1)
        inflater = zlib.decompressobj(-15) if method == DEFLATED else None
        remaining, produced = compressed, 0
        while remaining:
            block = self.source.read(min(_READ_BYTES, remaining))
            if not block:
                raise _Unexpected(f"entry {name!r} is truncated")
            remaining -= len(block)
            if inflater is not None:
                try:
                    block = inflater.decompress(block, limit + 1 - produced)
                except zlib.error as exc:
                    raise _Unexpected(f"entry {name!r} is corrupt: {exc}") from exc
                if inflater.unconsumed_tail:
                    raise _Unexpected(f"entry {name!r} expands past its declared size")
            produced += len(block)
            if produced > limit:
                raise _Unexpected(f"entry {name!r} is larger than its manifest line says")
            yield block
        if inflater is not None and not inflater.eof:
            raise _Unexpected(f"entry {name!r} ends before its compressed data does")
