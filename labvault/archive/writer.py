"""The backup archive: a zip written in one streaming pass, with a manifest of every entry.

Bytes flow source → zip → `PendingWrite` without ever being held whole in memory; the sink is
treated as non-seekable (zip data descriptors), so the same code streams to a local file or to
an object store. ZIP64 records are used only where sizes or counts need them, decided for each
file from its declared size and for the manifest from its known size. Manifest entries
are spilled to a temporary file as they are written, so memory stays flat in the entry count.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Callable, Generator, Iterator
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from datetime import datetime
from json.encoder import encode_basestring
from types import TracebackType
from typing import Any, Protocol, TypeVar

from labvault import __version__
from labvault.archive.manifest_schema import MAX_VERSION_DOCUMENT_BYTES
from labvault.archive.safe_names import case_distinct_name, manifest_entry_name
from labvault.errors import PermanentError
from labvault.json_codec import dump_sorted
from labvault.storage.store import PendingWrite
from labvault.zipstream.format import DEFLATED
from labvault.zipstream.writer import CaseClash, EntrySizeError, ZipStreamWriter

T = TypeVar("T")
_json_string = encode_basestring  # what json.dumps(str, ensure_ascii=False) gives
_MANIFEST_CLOSING = b"\n  ]\n}\n"

FORMAT_VERSION = 1
JSON_COMPRESS_LEVEL = 1
MANIFEST_COMPRESS_LEVEL = 6
COPY_BUFFER_BYTES = 1024 * 1024


class Readable(Protocol):
    """What an entry's bytes are copied from: a file, an S3 response body, a wrapper of one."""

    def read(self, size: int = -1) -> bytes: ...


class _GatheringSink:
    """A `PendingWrite` fed in blocks: the zip writer makes small writes per entry (header,
    data, descriptor), which are gathered here and handed on a megabyte at a time, so a million
    small entries do not cost three million trips through the storage layers. Large writes go
    straight through."""

    BLOCK = 1024 * 1024

    def __init__(self, sink: PendingWrite) -> None:
        self._sink = sink
        self._pending = bytearray()

    def write(self, data: bytes | memoryview) -> int:
        if len(data) >= self.BLOCK:
            self.flush()
            self._sink.write(data)
        else:
            self._pending += data
            if len(self._pending) >= self.BLOCK:
                self.flush()
        return len(data)

    def flush(self) -> None:
        if self._pending:
            self._sink.write(bytes(self._pending))
            self._pending.clear()


class Prefixed:
    """`source` with the bytes already read from it put back in front."""

    def __init__(self, head: bytes, source: Readable) -> None:
        self._head = head
        self._source = source

    def read(self, size: int = -1) -> bytes:
        if not self._head:
            return self._source.read(size)
        cut = len(self._head) if size < 0 else size
        taken, self._head = self._head[:cut], self._head[cut:]
        return taken


def read_ahead(source: Readable) -> tuple[int | None, Readable]:
    """A source of unknown size, with its size when it ends within the copy buffer (most do).

    A streamed entry's header must say ZIP64 up front, and an unknown size has to say it; Java's
    `ZipInputStream` then refuses the entry unless it is over 4 GiB. Reading one buffer ahead
    turns most unknown sizes into known ones; the rest keep ZIP64.
    """
    head = b""
    while len(head) <= COPY_BUFFER_BYTES and (chunk := source.read(COPY_BUFFER_BYTES + 1 - len(head))):
        head += chunk
    return (len(head) if len(head) <= COPY_BUFFER_BYTES else None), Prefixed(head, source)


def _hashed_inline(source: Readable, digest: Any) -> Generator[bytes, None, None]:
    while chunk := source.read(COPY_BUFFER_BYTES):
        digest.update(chunk)
        yield chunk


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
        self._stream = _GatheringSink(sink)
        self._zip = ZipStreamWriter(self._stream, modified=created)
        self._header = manifest_header
        self._manifest_path = manifest_entry_name(organization_sid)
        self._entries = tempfile.TemporaryFile(mode="w+", encoding="utf-8")
        # Reading the next chunk and hashing this one run beside the CRC and the write: all
        # three release the GIL, so a large file moves at the pace of the slowest, not the sum.
        self._reader = ThreadPoolExecutor(1, thread_name_prefix="archive-read")
        self._hasher = ThreadPoolExecutor(1, thread_name_prefix="archive-hash")
        self.versions = 0
        self.files = 0
        self.total_bytes = 0
        self._closed = False

    def _check_path(self, path: str) -> None:
        if path == self._manifest_path:
            raise ValueError(f"archive entry {path!r} written twice (it is the manifest's)")

    def _record(self, path: str, size: int, sha256: str, kind: str, **extra: Any) -> None:
        entry = {"path": path, "kind": kind, "size": size, "sha256": sha256, **extra}
        self._entries.write(json.dumps(entry, ensure_ascii=False, sort_keys=True) + "\n")
        self.total_bytes += size

    def add_json(self, path: str, document: dict[str, Any], *, modified: datetime | None = None) -> None:
        """A version document: compact UTF-8 JSON with sorted keys, deflated at level 1, dated
        `modified` (the version's creation; the archive's time when None).

        Level 1 because for documents of a few hundred bytes it compresses as well as level 6
        at 2.5× the speed (the per-entry compressor set-up dominates). This runs once per
        version, so its manifest line is assembled directly: the same text `_record` would
        write, at a third of the cost."""
        data = dump_sorted(document)
        if len(data) > MAX_VERSION_DOCUMENT_BYTES:
            raise PermanentError(f"version {document.get('sid')!r} is {len(data)} bytes of JSON, over the "
                                 f"{MAX_VERSION_DOCUMENT_BYTES} a restore accepts; shrink it before backing up")
        self._check_path(path)
        path, _ = self._written(path, lambda name: self._zip.write_whole(
            name, data, method=DEFLATED, level=JSON_COMPRESS_LEVEL, modified=modified))
        sid = document.get("sid")
        named = (f'"sid": {_json_string(sid)}, ' if isinstance(sid, str) and not path.endswith(f"/{sid}.json")
                 else "")  # a shortened or Windows-safe path no longer says the sid
        self._entries.write(f'{{"kind": "version", "path": {_json_string(path)}, '
                            f'"sha256": "{hashlib.sha256(data).hexdigest()}", {named}"size": {len(data)}}}\n')
        self.total_bytes += len(data)
        self.versions += 1

    def add_stream(self, path: str, source: Readable, *, declared_size: int | None,
                   modified: datetime | None = None, **extra: Any) -> int:
        """An uploaded file, copied in chunks and stored (uploads are mostly compressed already),
        dated `modified` (its upload; the archive's time when None).

        Returns the number of bytes copied; the manifest records the size actually read. The
        entry's header says ZIP64 from `declared_size` (when None, from the size read ahead);
        a file whose bytes contradict that choice fails the archive rather than make its header
        lie.
        """
        self._check_path(path)
        if declared_size is None:
            declared_size, source = read_ahead(source)
        digest = hashlib.sha256()
        chunks: Generator[bytes, None, None]
        if declared_size is not None and declared_size < COPY_BUFFER_BYTES:
            chunks = _hashed_inline(source, digest)  # one chunk: threads would cost more than they save
        else:
            chunks = self._hashed_ahead(self._read_ahead(source), digest)
        try:
            path, copied = self._written(path, lambda name: self._zip.write_stream(
                name, chunks, declared_size=declared_size, modified=modified))
        except EntrySizeError as exc:
            raise PermanentError(f"file {path!r} holds {exc.size} bytes but its row declares {declared_size}, "
                                 "which decides the archive's ZIP64 headers; correct the file's size and "
                                 "retry the backup") from exc
        finally:
            chunks.close()
        self._record(path, copied, digest.hexdigest(), "file", **extra)
        self.files += 1
        return copied

    def _written(self, path: str, write: Callable[[str], T]) -> tuple[str, T]:
        """`write` the entry at `path`, or, if that differs from an earlier entry's name only by
        case, at `case_distinct_name(path)`; the name used goes in the manifest."""
        try:
            return path, write(path)
        except CaseClash:
            path = case_distinct_name(path)
            return path, write(path)

    def _read_ahead(self, source: Readable) -> Generator[bytes, None, None]:
        """The source's chunks; the next one is being read while this one is used."""
        pending = self._reader.submit(source.read, COPY_BUFFER_BYTES)
        try:
            while chunk := pending.result():
                pending = self._reader.submit(source.read, COPY_BUFFER_BYTES)
                yield chunk
        finally:
            wait([pending])  # never leave a read running on a source about to be closed

    def _hashed_ahead(self, chunks: Generator[bytes, None, None],
                      digest: Any) -> Generator[bytes, None, None]:
        """The same chunks, each fed to `digest` on the hashing thread while it is written."""
        previous: Future[None] | None = None
        try:
            for chunk in chunks:
                if previous is not None:
                    previous.result()
                previous = self._hasher.submit(digest.update, chunk)
                yield chunk
            if previous is not None:
                previous.result()
        finally:
            chunks.close()
            if previous is not None:
                wait([previous])

    def _manifest_opening(self) -> bytes:
        header = {
            **self._header,
            "format_version": FORMAT_VERSION,
            "labvault_version": __version__,
            "counts": {"versions": self.versions, "files": self.files},
            "total_bytes": self.total_bytes,
        }
        opening = json.dumps(header, ensure_ascii=False, sort_keys=True, indent=2)[:-2]
        return f'{opening},\n  "entries": [\n'.encode("utf-8")

    def _manifest_chunks(self, opening: bytes) -> Iterator[bytes]:
        yield opening
        self._entries.seek(0)
        separator = ""
        for line in self._entries:
            yield f"{separator}    {line.rstrip()}".encode("utf-8")
            separator = ",\n"
        yield _MANIFEST_CLOSING

    def _manifest_size(self, opening: bytes) -> int:
        """The manifest's size before it is written: each spilled line (its newline dropped)
        gains an indent of 4 and, after the first, a separator of 2."""
        self._entries.flush()
        lines = self.versions + self.files
        spilled = os.fstat(self._entries.fileno()).st_size
        return len(opening) + spilled + 5 * lines - 2 * min(lines, 1) + len(_MANIFEST_CLOSING)

    def seal(self) -> SealedArchive:
        """Write the manifest, finish the zip and make the archive visible, in that order."""
        opening = self._manifest_opening()
        self._zip.write_stream(self._manifest_path, self._manifest_chunks(opening),
                               declared_size=self._manifest_size(opening), level=MANIFEST_COMPRESS_LEVEL)
        self._zip.close()
        self._stream.flush()
        self._sink.commit()
        self._close()
        return SealedArchive(self.key, self._zip.offset, self.versions, self.files,
                             self.total_bytes)

    def abort(self) -> None:
        """Drop everything written so far; nothing becomes visible at `key`."""
        if self._closed:
            return
        try:
            self._zip.abandon()
            self._sink.abort()
        finally:
            self._close()

    def _close(self) -> None:
        self._closed = True
        self._reader.shutdown()
        self._hasher.shutdown()
        self._entries.close()

    def __enter__(self) -> "ArchiveWriter":
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if not self._closed:
            self.abort()
