"""Reading one zip entry from its local header on, at a cost bounded by what its directory record says.

Both archive readers go through here, so a hostile entry meets the same rules whichever reads
it: the local header must be where the directory says and name the same entry with the same
method; exactly the declared compressed bytes are read, never past the central directory; a
deflate stream must end exactly where those bytes end (leftover or missing data is
corruption, where `zipfile` stops at the declared size and leaves the rest unread); the output
may not exceed the declared size, and its size and CRC must be the directory's. Where the entry
ends (data descriptor included) is recorded, so callers can check that entries tile the archive
with no overlap and no gap, as Info-ZIP's `unzip -t` does.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterator
from typing import BinaryIO

from labvault.zipstream.directory import DirectoryRecord, ZipStructureError
from labvault.zipstream.format import (
    DEFLATED,
    DESCRIPTOR32,
    DESCRIPTOR64,
    DESCRIPTOR_SIGNATURE,
    FLAG_DESCRIPTOR,
    FLAG_UTF8,
    LOCAL,
    LOCAL_SIGNATURE,
    STORED,
    ZIP64_EXTRA,
)

READ_BYTES = 1024 * 1024


def _has_zip64(extra: bytes) -> bool:
    position = 0
    while position + 4 <= len(extra):
        kind, length = struct.unpack_from("<HH", extra, position)
        if kind == ZIP64_EXTRA:
            return True
        position += 4 + length
    return False


class EntryReader:
    """One entry's bytes, checked as they stream; `end` is where the entry ends once read.

    `bound` is the offset nothing of an entry may reach (the central directory's start).
    """

    def __init__(self, source: BinaryIO, record: DirectoryRecord, *, bound: int) -> None:
        self.source = source
        self.record = record
        self.bound = bound
        self.end: int | None = None

    def _fail(self, reason: str) -> ZipStructureError:
        return ZipStructureError(f"entry {self.record.name!r} {reason}")

    def _read_exactly(self, count: int) -> bytes:
        data = self.source.read(count)
        if len(data) != count:
            raise self._fail("is truncated")
        return data

    def _data_start(self) -> tuple[int, bool]:
        """Where the entry's data begins, and whether its local header carries ZIP64 sizes."""
        record = self.record
        self.source.seek(record.header_offset)
        fields = LOCAL.unpack(self._read_exactly(LOCAL.size))
        if fields[0] != LOCAL_SIGNATURE:
            raise self._fail("has no local header where the directory says")
        raw_name = self._read_exactly(fields[9])
        try:
            name = raw_name.decode("utf-8" if fields[2] & FLAG_UTF8 else "cp437")
        except UnicodeDecodeError:
            raise self._fail("has a local name that is not valid UTF-8") from None
        if name != record.name or fields[3] != record.method:
            raise self._fail("has a local header that disagrees with the directory")
        extra = self._read_exactly(fields[10])
        start = record.header_offset + LOCAL.size + fields[9] + fields[10]
        if start + record.compressed > self.bound:
            raise self._fail("extends into the central directory")
        return start, _has_zip64(extra)

    def extent(self) -> int:
        """Where the entry ends, found without reading its data (the full check's tiling)."""
        start, zip64 = self._data_start()
        self.source.seek(start + self.record.compressed)
        return start + self.record.compressed + self._descriptor_length(zip64)

    def chunks(self, limit: int) -> Iterator[bytes]:
        """The entry's bytes, never more than `limit`; raises `ZipStructureError` naming the
        entry on anything wrong. Read it to the end: the checks run as it ends."""
        record = self.record
        if record.method not in (STORED, DEFLATED):
            raise self._fail(f"uses compression method {record.method}; only stored and deflated are read")
        start, zip64 = self._data_start()
        inflater = zlib.decompressobj(-15) if record.method == DEFLATED else None
        remaining, produced, crc = record.compressed, 0, 0
        while remaining:
            block = self.source.read(min(READ_BYTES, remaining))
            if not block:
                raise self._fail("is truncated")
            remaining -= len(block)
            for piece in (self._inflated(inflater, block, remaining) if inflater is not None else (block,)):
                produced += len(piece)
                if produced > limit:
                    raise self._fail(f"is larger than its declared size of {limit} bytes")
                crc = zlib.crc32(piece, crc)
                yield piece
        if inflater is not None and not inflater.eof:
            raise self._fail("ends before its deflate stream does")
        if produced != record.size or crc != record.crc:
            raise self._fail("does not match its directory record (size or CRC)")
        self.end = start + record.compressed + self._descriptor_length(zip64)

    def _inflated(self, inflater: "zlib._Decompress", block: bytes, remaining: int) -> Iterator[bytes]:
        """`block` inflated at most `READ_BYTES` at a time: a megabyte of deflate can hold a
        gigabyte, which inflated in one call is one gigabyte-long chunk in memory."""
        while True:
            try:
                piece = inflater.decompress(block, READ_BYTES)
            except zlib.error as exc:
                raise self._fail(f"is corrupt: {exc}") from None
            block = inflater.unconsumed_tail
            if inflater.eof and (inflater.unused_data or block or remaining):
                raise self._fail("has data after the end of its deflate stream")
            if piece:
                yield piece
            if inflater.eof or (not block and len(piece) < READ_BYTES):  # nothing held back
                return

    def _descriptor_length(self, zip64: bool) -> int:
        """The data descriptor's length (0 without one), checked against the directory."""
        if not self.record.flags & FLAG_DESCRIPTOR:
            return 0
        layout = DESCRIPTOR64 if zip64 else DESCRIPTOR32
        head = self.source.read(layout.size)
        if len(head) >= 4 and struct.unpack_from("<I", head)[0] == DESCRIPTOR_SIGNATURE:
            if len(head) != layout.size:
                raise self._fail("has a truncated data descriptor")
            _, crc, compressed, size = layout.unpack(head)
            length = layout.size
        else:  # the signature is optional
            body = struct.Struct(layout.format.replace("I", "", 1))
            if len(head) < body.size:
                raise self._fail("has a truncated data descriptor")
            crc, compressed, size = body.unpack_from(head)
            length = body.size
        if (crc, compressed, size) != (self.record.crc, self.record.compressed, self.record.size):
            raise self._fail("has a data descriptor that disagrees with the directory")
        return length
