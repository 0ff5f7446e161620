"""Verifying an archive: every entry read once and checked against the manifest.

A backup is only as good as its restore; this is the check both `backup verify` and restore run
first. It never trusts the archive: names, sizes and compression ratios are checked before bytes
are read, and reads stop at the size the manifest declares.
"""

from __future__ import annotations

import hashlib
import json
import zipfile
import zlib
from collections.abc import Iterator
from typing import Any, BinaryIO

from labvault.archive import COPY_BUFFER_BYTES
from labvault.archive_rules import (
    MANIFEST_NAME,
    MAX_MANIFEST_BYTES,
    ArchiveLimits,
    VerifyReport,
    is_manifest_name,
    unsafe_name_reason,
)
from labvault.archive_scan import scan_archive


class ArchiveReader:
    """Checks an open zip's structure and manifest; then yields entries' bytes, verified."""

    def __init__(self, source: BinaryIO, *, label: str, limits: ArchiveLimits | None = None) -> None:
        self.report = VerifyReport(source=label)
        self.limits = limits or ArchiveLimits()
        self.manifest: dict[str, Any] = {}
        self.entries: dict[str, dict[str, Any]] = {}
        try:
            self._zip: zipfile.ZipFile | None = zipfile.ZipFile(source)
        except (zipfile.BadZipFile, OSError, EOFError) as exc:
            self._zip = None
            self.report.problems.append(f"not a readable zip archive (truncated or corrupt): {exc}")
            return
        self._check_structure()

    def _problem(self, text: str) -> None:
        self.report.problems.append(text)

    def _check_structure(self) -> None:
        assert self._zip is not None
        infos = self._zip.infolist()
        self.report.entries = len(infos)
        seen: set[str] = set()
        for info in infos:
            if info.filename in seen:
                self._problem(f"entry {info.filename!r} appears twice")
            seen.add(info.filename)
            reason = unsafe_name_reason(info.filename, info.external_attr)
            if reason:
                self._problem(f"entry {info.filename!r} {reason}")
        declared = sum(info.file_size for info in infos)
        if declared > self.limits.max_total_bytes:
            self._problem(f"archive would expand to {declared} bytes, over the limit of "
                          f"{self.limits.max_total_bytes}")
        for info in infos:
            if self.limits.is_bomb(info.file_size, info.compress_size):
                self._problem(f"entry {info.filename!r} expands {info.file_size // max(info.compress_size, 1)}"
                              f"-fold: refused as a ZIP bomb")
        manifests = [i for i in infos if is_manifest_name(i.filename)]
        if len(manifests) != 1:
            self._problem(f"expected one <organization>/{MANIFEST_NAME}, found {len(manifests)}")
            return
        if self.report.problems:
            return
        self._read_manifest(manifests[0], infos)

    def _read_manifest(self, info: zipfile.ZipInfo, infos: list[zipfile.ZipInfo]) -> None:
        assert self._zip is not None
        if info.file_size > MAX_MANIFEST_BYTES:
            self._problem(f"manifest of {info.file_size} bytes is over the limit")
            return
        try:
            self.manifest = json.loads(self._zip.read(info))
            entries = self.manifest["entries"]
            self.entries = {entry["path"]: entry for entry in entries}
            organization = self.manifest["organization"]["sid"]
        except (ValueError, KeyError, TypeError, zipfile.BadZipFile, zlib.error, EOFError) as exc:
            self._problem(f"manifest is unreadable: {type(exc).__name__}: {exc}")
            return
        self.report.organization_sid = organization
        self.report.backup_sid = (self.manifest.get("backup") or {}).get("sid")
        if len(self.entries) != len(entries):
            self._problem("manifest lists a path twice")
        if info.filename != f"{organization}/{MANIFEST_NAME}":
            self._problem(f"manifest is at {info.filename!r} but names organization {organization!r}")
        names = {i.filename for i in infos} - {info.filename}
        for path in sorted(names - set(self.entries)):
            self._problem(f"entry {path!r} is not in the manifest")
        for path in sorted(set(self.entries) - names):
            self._problem(f"entry {path!r} is in the manifest but missing from the archive")
        for path, entry in self.entries.items():
            if not path.startswith(f"{organization}/"):
                self._problem(f"manifest entry {path!r} is outside organization {organization!r}")
            if not isinstance(entry.get("size"), int) or entry["size"] < 0:
                self._problem(f"manifest entry {path!r} has no valid size")
        kinds = [entry.get("kind") for entry in entries]
        counts = self.manifest.get("counts") or {}
        if counts.get("versions") != kinds.count("version") or counts.get("files") != kinds.count("file"):
            self._problem(f"manifest counts {counts} do not match its {kinds.count('version')} "
                          f"version and {kinds.count('file')} file entries")
        if self.manifest.get("total_bytes") != sum(e.get("size", 0) for e in entries if isinstance(e.get("size"), int)):
            self._problem("manifest total_bytes does not match the sum of its entries' sizes")

    def chunks(self, path: str) -> Iterator[bytes]:
        """An entry's bytes in chunks, checked against the manifest as they stream: raises
        `ValueError` naming the entry if its size, SHA-256 or CRC disagree."""
        assert self._zip is not None
        expected = self.entries[path]
        digest = hashlib.sha256()
        size = 0
        try:
            with self._zip.open(path) as entry:
                while True:
                    chunk = entry.read(min(COPY_BUFFER_BYTES, expected["size"] + 1 - size))
                    if not chunk:
                        break
                    size += len(chunk)
                    if size > expected["size"]:
                        raise ValueError(f"entry {path!r} is larger than the manifest's {expected['size']} bytes")
                    digest.update(chunk)
                    yield chunk
        except (zipfile.BadZipFile, EOFError, OSError, zipfile.LargeZipFile, zlib.error) as exc:
            raise ValueError(f"entry {path!r} is corrupt: {exc}") from exc
        if size != expected["size"]:
            raise ValueError(f"entry {path!r} has {size} bytes, the manifest says {expected['size']}")
        if digest.hexdigest() != expected.get("sha256"):
            raise ValueError(f"entry {path!r}: SHA-256 differs from the manifest")

    def manifest_entries(self) -> Iterator[dict[str, Any]]:
        """The manifest's entries, in its order."""
        return iter(self.entries.values())

    def entries_with_bytes(self) -> Iterator[tuple[dict[str, Any], Iterator[bytes]]]:
        """Each entry in manifest order with its bytes, checked as they stream (`chunks`)."""
        for path, entry in self.entries.items():
            yield entry, self.chunks(path)

    def verify_contents(self) -> VerifyReport:
        """Read every entry once; each one that disagrees with the manifest is a problem."""
        if self._zip is None or self.report.problems:
            return self.report
        for path, entry in self.entries.items():
            try:
                for _ in self.chunks(path):
                    pass
            except ValueError as exc:
                self._problem(str(exc))
                continue
            self.report.total_bytes += entry["size"]
            self.report.versions += entry.get("kind") == "version"
            self.report.files += entry.get("kind") == "file"
        return self.report

    def close(self) -> None:
        if self._zip is not None:
            self._zip.close()


def verify_archive(source: BinaryIO, *, label: str, limits: ArchiveLimits | None = None) -> VerifyReport:
    """Every entry read once and checked against the manifest.

    An archive laid out as labvault writes it is checked in one pass with flat memory; anything
    else, including any archive with a problem, gets the full check that names each problem.
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
