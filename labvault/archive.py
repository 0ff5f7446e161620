"""The backup archive: a zip written in one streaming pass, with a manifest of every entry.

Bytes flow source → zip → `PendingWrite` without ever being held whole in memory; the sink is
treated as non-seekable (zip data descriptors), so the same code streams to a local file or to
an object store. ZIP64 records are used wherever sizes or counts need them. Manifest entries
are spilled to a temporary file as they are written, so memory stays flat in the entry count.
"""

from __future__ import annotations

import hashlib
import json
import tempfile
import zipfile
from dataclasses import dataclass
from datetime import datetime
from types import TracebackType
from typing import Any, BinaryIO

from labvault import __version__
from labvault.safe_names import manifest_entry_name
from labvault.storage import PendingWrite

FORMAT_VERSION = 1
JSON_COMPRESS_LEVEL = 1
COPY_BUFFER_BYTES = 1024 * 1024
# A streamed entry's header must say ZIP64 up front; past this declared size we do so.
ZIP64_DECLARED_SIZE = 1 << 31


class _CountingSink:
    """A write-only, non-seekable view of a `PendingWrite` that knows how many bytes went in.

    zipfile makes three small writes per entry (header, data, descriptor); they are gathered
    here and handed on in blocks, so a million small entries do not cost three million trips
    through the storage layers. Large writes go straight through.
    """

    BLOCK = 1024 * 1024

    def __init__(self, sink: PendingWrite) -> None:
        self._sink = sink
        self._pending = bytearray()
        self.written = 0

    def write(self, data: bytes | memoryview) -> int:
        size = len(data)
        if size >= self.BLOCK:
            self.flush()
            self._sink.write(data)
        else:
            self._pending += data
            if len(self._pending) >= self.BLOCK:
                self.flush()
        self.written += size
        return size

    def tell(self) -> int:
        return self.written

    def flush(self) -> None:
        if self._pending:
            self._sink.write(bytes(self._pending))
            self._pending.clear()


@dataclass(frozen=True)
class SealedArchive:
    """What a finished archive is: counts and sizes equal to the manifest's and the zip's."""

    key: str
    size: int
    versions: int
    files: int
    total_bytes: int


class ArchiveWriter:
    """Writes one backup archive; use as a context manager so a failure aborts the output.

    Contract: entries are added one at a time; `seal()` writes `<org>/manifest.json`, closes the
    zip and commits the pending write, after which the archive is visible at `key`. Leaving the
    `with` block without sealing removes the partial output.
    """

    def __init__(self, sink: PendingWrite, *, key: str, manifest_header: dict[str, Any],
                 organization_sid: str, created: datetime) -> None:
        self.key = key
        self._sink = sink
        self._stream = _CountingSink(sink)
        self._zip = zipfile.ZipFile(self._stream, mode="w", allowZip64=True)  # type: ignore[arg-type]
        self._header = manifest_header
        self._manifest_path = manifest_entry_name(organization_sid)
        self._date_time = created.timetuple()[:6]
        self._entries = tempfile.TemporaryFile(mode="w+", encoding="utf-8")
        self._paths: set[str] = set()
        self._buffer = bytearray(COPY_BUFFER_BYTES)
        self.versions = 0
        self.files = 0
        self.total_bytes = 0
        self._closed = False

    def _claim(self, path: str) -> None:
        """Each path once; the manifest's path is reserved for `seal()`."""
        if path in self._paths or path == self._manifest_path:
            raise ValueError(f"archive entry {path!r} written twice")
        self._paths.add(path)

    def _zip_info(self, path: str, compress_type: int) -> zipfile.ZipInfo:
        info = zipfile.ZipInfo(path, date_time=self._date_time)
        info.compress_type = compress_type
        info.external_attr = 0o644 << 16
        return info

    def _record(self, path: str, size: int, sha256: str, kind: str, **extra: Any) -> None:
        entry = {"path": path, "kind": kind, "size": size, "sha256": sha256, **extra}
        self._entries.write(json.dumps(entry, ensure_ascii=False, sort_keys=True) + "\n")
        self.total_bytes += size

    def add_json(self, path: str, document: dict[str, Any]) -> None:
        """A version document: compact UTF-8 JSON with sorted keys, deflated at level 1.

        Compact because only then does `json` use its C encoder (2.5× faster); level 1 because
        for documents of a few hundred bytes it compresses as well as level 6 at 2.5× the speed
        (the per-entry compressor set-up dominates)."""
        data = json.dumps(document, ensure_ascii=False, sort_keys=True,
                          separators=(",", ":")).encode("utf-8")
        self._claim(path)
        info = self._zip_info(path, zipfile.ZIP_DEFLATED)
        info._compresslevel = JSON_COMPRESS_LEVEL  # zipfile reads it per entry
        self._zip.writestr(info, data)
        self._record(path, len(data), hashlib.sha256(data).hexdigest(), "version")
        self.versions += 1

    def add_stream(self, path: str, source: BinaryIO, *, declared_size: int | None,
                   **extra: Any) -> int:
        """An uploaded file, copied in chunks and stored (uploads are mostly compressed already).

        Returns the number of bytes copied; the manifest records the size actually read.
        """
        self._claim(path)
        info = self._zip_info(path, zipfile.ZIP_STORED)
        info.file_size = declared_size or 0
        force_zip64 = declared_size is None or declared_size >= ZIP64_DECLARED_SIZE
        digest = hashlib.sha256()
        view = memoryview(self._buffer)
        copied = 0
        with self._zip.open(info, mode="w", force_zip64=force_zip64) as entry:
            while True:
                count = source.readinto(self._buffer)
                if not count:
                    break
                chunk = view[:count]
                digest.update(chunk)
                entry.write(chunk)
                copied += count
        self._record(path, copied, digest.hexdigest(), "file", **extra)
        self.files += 1
        return copied

    def _write_manifest(self) -> None:
        header = {
            **self._header,
            "format_version": FORMAT_VERSION,
            "labvault_version": __version__,
            "counts": {"versions": self.versions, "files": self.files},
            "total_bytes": self.total_bytes,
        }
        opening = json.dumps(header, ensure_ascii=False, sort_keys=True, indent=2)[:-2]
        info = self._zip_info(self._manifest_path, zipfile.ZIP_DEFLATED)
        self._entries.seek(0)
        with self._zip.open(info, mode="w", force_zip64=True) as manifest:
            manifest.write(f'{opening},\n  "entries": [\n'.encode("utf-8"))
            separator = ""
            for line in self._entries:
                manifest.write(f"{separator}    {line.rstrip()}".encode("utf-8"))
                separator = ",\n"
            manifest.write(b"\n  ]\n}\n")

    def seal(self) -> SealedArchive:
        """Write the manifest, finish the zip and make the archive visible, in that order."""
        self._write_manifest()
        self._zip.close()
        self._stream.flush()
        self._sink.commit()
        self._close()
        return SealedArchive(self.key, self._stream.written, self.versions, self.files,
                             self.total_bytes)

    def abort(self) -> None:
        """Drop everything written so far; nothing becomes visible at `key`."""
        if self._closed:
            return
        try:
            self._zip.fp = None  # the zip is abandoned: do not write a central directory
            self._sink.abort()
        finally:
            self._close()

    def _close(self) -> None:
        self._closed = True
        self._entries.close()

    def __enter__(self) -> "ArchiveWriter":
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if not self._closed:
            self.abort()
