"""A streaming zip writer whose memory does not grow with the number of entries.

Python's `zipfile` keeps a `ZipInfo` (~0.5 KB) per entry until it closes, so a million versions
cost half a gigabyte. Here each entry's central-directory record is packed as soon as the entry
is finished and spilled to a temporary file, which is copied to the output at the end; names
are remembered as 8-byte hashes only. It writes what labvault needs and nothing more: stored or
deflated entries, UTF-8 names, ZIP64 only where a size, offset or count needs it, to an output
that cannot seek (the sizes of streamed entries follow their data in data descriptors).

Streaming readers (Java's `ZipInputStream`, Commons Compress, Node's `unzipper`) read an entry
without its central record, so they must find where it ends from the entry itself: a stored
entry with a data descriptor gives them no way to, and they refuse it. Streamed entries are
therefore always a deflate stream, made of stored blocks when not compressed (the bytes are
copied, not compressed: 5 bytes of framing per 64 KiB). Those readers also size the data
descriptor by the entry's real size (Java 17), so a streamed entry of known size says ZIP64
exactly when its sizes need it.
"""

from __future__ import annotations

import struct
import tempfile
import zlib
from array import array
from collections.abc import Iterable
from datetime import datetime, timezone
from typing import Protocol

from labvault.zipstream.format import (
    CENTRAL,
    CENTRAL_SIGNATURE,
    DEFLATED,
    DESCRIPTOR32,
    DESCRIPTOR64,
    DESCRIPTOR_SIGNATURE,
    END,
    END_SIGNATURE,
    EXTENDED_TIME_EXTRA,
    FLAG_DESCRIPTOR,
    FLAG_UTF8,
    LIMIT16,
    LIMIT32,
    LOCAL,
    LOCAL_SIGNATURE,
    STORED,
    ZIP64_END,
    ZIP64_END_SIGNATURE,
    ZIP64_EXTRA,
    ZIP64_LOCATOR,
    ZIP64_LOCATOR_SIGNATURE,
)

_MADE_BY_UNIX = 3 << 8
_VERSION_ZIP64, _VERSION_DEFLATE = 45, 20
_REGULAR_FILE = 0o100644 << 16
_SPILL_COPY_BYTES = 1024 * 1024
_STORED_BLOCK_BYTES = 0xFFFF  # the most one deflate stored block holds
_STORED_BLOCK_HEADER = struct.Struct("<BHH")  # BFINAL and BTYPE 00, LEN, NLEN (byte-aligned)
_EXTENDED_TIME = struct.Struct("<HHBi")  # tag, length, flags (bit 0: mtime), mtime


class Output(Protocol):
    def write(self, data: bytes | memoryview) -> int: ...


def dos_date_time(when: datetime) -> tuple[int, int]:
    """The (date, time) pair of a zip header, from UTC clock time; the field cannot say
    anything before 1980 or after 2107 (clamped)."""
    if when.year < 1980:
        return 1 << 5 | 1, 0
    if when.year > 2107:
        return 127 << 9 | 12 << 5 | 31, 23 << 11 | 59 << 5 | 29
    return ((when.year - 1980) << 9 | when.month << 5 | when.day,
            when.hour << 11 | when.minute << 5 | when.second // 2)


Stamp = tuple[int, int, bytes]
"""An entry's modification time as its headers say it: the DOS date and time fields (UTC clock
time) and the extended-timestamp extra field (0x5455, UTC seconds since 1970), which Info-ZIP,
7-Zip and bsdtar prefer to the DOS fields. A plain tuple: one is made per version."""


def entry_stamp(when: datetime) -> Stamp:
    """The `Stamp` of `when`; a naive datetime is taken to be UTC (as SQLite returns them). A
    time the extra field's signed 32 bits cannot hold (before 1970, from 2038) has none."""
    if when.tzinfo is not timezone.utc:  # the database's own are UTC already: no conversion
        when = when.replace(tzinfo=timezone.utc) if when.tzinfo is None else when.astimezone(timezone.utc)
    seconds = int(when.timestamp())
    date, time = dos_date_time(when)
    return date, time, (_EXTENDED_TIME.pack(EXTENDED_TIME_EXTRA, 5, 1, seconds) if 0 <= seconds < 2**31 else b"")


def stored_length(size: int) -> int:
    """The length of `size` bytes framed as deflate stored blocks: full blocks, then a final
    block holding the rest (empty when nothing is left)."""
    return size + _STORED_BLOCK_HEADER.size * (size // _STORED_BLOCK_BYTES + 1)


def needs_zip64(size: int | None, *, level: int) -> bool:
    """Whether a streamed entry of at most `size` bytes (None: unknown) may need ZIP64 sizes.

    Stored blocks grow by a known amount; a compressed stream is bounded with room for deflate's
    worst case (zlib's deflateBound is about size / 4096 more).
    """
    if size is None:
        return True
    grown = stored_length(size) if level == 0 else size + (size >> 10) + 64
    return grown >= LIMIT32


class EntrySizeError(ValueError):
    """A streamed entry's real size contradicts the ZIP64 choice its header made from the
    declared size: the archive would lie to streaming readers, so it is not finished."""

    def __init__(self, name: str, declared: int | None, size: int) -> None:
        super().__init__(f"archive entry {name!r} holds {size} bytes, not the {declared} declared, "
                         "so its header's ZIP64 choice would be wrong")
        self.name, self.declared, self.size = name, declared, size


class CaseClash(ValueError):
    """A name that differs from one already written only by case: one file over the other where
    names ignore case (Windows, macOS). The caller may write the entry under another name."""

    def __init__(self, name: str, written: str) -> None:
        super().__init__(f"archive entry {name!r} differs from {written!r} only by case")
        self.name, self.written = name, written


class _StoredBlocks:
    """Frames bytes as deflate stored blocks of the full 64 KiB, whatever the chunking, so the
    framed length is `stored_length` of the size and can be decided before the data is seen."""

    def __init__(self) -> None:
        self._held = bytearray()  # appended in place: tiny chunks must not copy it each time

    def compress(self, chunk: bytes | memoryview) -> bytes:
        """Every full block `chunk` completes (zlib's interface); the rest is held for the next call."""
        view = memoryview(chunk).cast("B")
        parts: list[bytes | bytearray | memoryview] = []
        position = 0
        if self._held:
            position = min(_STORED_BLOCK_BYTES - len(self._held), len(view))
            self._held += view[:position]
            if len(self._held) < _STORED_BLOCK_BYTES:
                return b""
            parts += (_STORED_BLOCK_HEADER.pack(0, _STORED_BLOCK_BYTES, 0), self._held)
        while len(view) - position >= _STORED_BLOCK_BYTES:
            parts += (_STORED_BLOCK_HEADER.pack(0, _STORED_BLOCK_BYTES, 0),
                      view[position:position + _STORED_BLOCK_BYTES])
            position += _STORED_BLOCK_BYTES
        self._held = bytearray(view[position:])
        return b"".join(parts)

    def flush(self) -> bytes:
        """The final block, with whatever is held."""
        held = bytes(self._held)
        return _STORED_BLOCK_HEADER.pack(1, len(held), len(held) ^ 0xFFFF) + held


class NameHashes:
    """Which names were written, at 8 to 16 bytes each: 64-bit hashes in an open-addressing table.

    A hash seen before only says "maybe": the caller confirms against the real names, so a hash
    collision is never mistaken for a duplicate.
    """

    def __init__(self) -> None:
        self._table = array("Q", bytes(8 * 1024))
        self._count = 0

    def add(self, name: str) -> bool:
        """Remember `name`; False when its hash was already there."""
        value = hash(name) & 0xFFFFFFFFFFFFFFFF or 1
        table = self._table
        mask = len(table) - 1
        slot = value & mask
        while (held := table[slot]) != 0:
            if held == value:
                return False
            slot = (slot + 1) & mask
        table[slot] = value
        self._count += 1
        if 2 * self._count > len(table):
            self._grow()
        return True

    def _grow(self) -> None:
        old, self._table = self._table, array("Q", bytes(16 * len(self._table)))
        mask = len(self._table) - 1
        for value in old:
            if value:
                slot = value & mask
                while self._table[slot]:
                    slot = (slot + 1) & mask
                self._table[slot] = value


class ZipStreamWriter:
    """Writes entries one after another to `output`; `close()` writes the central directory.

    Contract: every name is written once (a second time raises `ValueError`) and no two differ
    only by case (`CaseClash`, before anything of the entry is written); after any other error
    the writer is abandoned, never closed, so no central directory makes a half archive look whole.
    The name table holds case-folded names, so the one table serves both checks.
    """

    def __init__(self, output: Output, *, modified: datetime) -> None:
        self._output = output
        self._default_stamp = entry_stamp(modified)
        self._directory = tempfile.TemporaryFile()
        self._names = NameHashes()
        self.offset = 0
        self.entries = 0

    def _write(self, data: bytes | memoryview) -> None:
        self._output.write(data)
        self.offset += len(data)

    def _stamp(self, modified: datetime | None) -> Stamp:
        """The entry's `Stamp`: the archive's time when None."""
        return self._default_stamp if modified is None else entry_stamp(modified)

    def _claim(self, name: str) -> bytes:
        folded = name.casefold()
        if not self._names.add(folded) and (written := self._written_as(folded)) is not None:
            if written == name:
                raise ValueError(f"archive entry {name!r} written twice")
            raise CaseClash(name, written)
        return name.encode("utf-8")

    def _written_as(self, folded: str) -> str | None:
        """The name written before that case-folds to `folded`, read back from the spilled
        directory (only when a hash repeats), or None."""
        directory = self._directory
        directory.seek(0)
        try:
            while header := directory.read(CENTRAL.size):
                name_length, extra_length, comment_length = CENTRAL.unpack(header)[10:13]
                written = directory.read(name_length).decode("utf-8")
                if written.casefold() == folded:
                    return written
                directory.seek(extra_length + comment_length, 1)
            return None
        finally:
            directory.seek(0, 2)

    def write_whole(self, name: str, data: bytes, *, method: int = STORED, level: int = 6,
                    modified: datetime | None = None) -> None:
        """An entry whose bytes are all at hand: sizes and CRC go in its header up front.
        `modified` is the entry's time (the archive's when None)."""
        encoded = self._claim(name)
        stamp = self._stamp(modified)
        body = data
        if method == DEFLATED:
            compressor = zlib.compressobj(level, zlib.DEFLATED, -15)
            body = compressor.compress(data) + compressor.flush()
        crc = zlib.crc32(data)
        header_offset = self.offset
        zip64 = len(data) >= LIMIT32 or len(body) >= LIMIT32
        extra = (struct.pack("<HHQQ", ZIP64_EXTRA, 16, len(data), len(body)) if zip64 else b"") + stamp[2]
        sizes = (LIMIT32, LIMIT32) if zip64 else (len(body), len(data))
        flags = self._flags(encoded, name)
        self._write(LOCAL.pack(LOCAL_SIGNATURE, self._version(zip64, method), flags, method,
                                stamp[1], stamp[0], crc, *sizes, len(encoded), len(extra))
                    + encoded + extra + body)
        self._record(encoded, flags, method, crc, len(body), len(data), header_offset, stamp, zip64=zip64)

    def write_stream(self, name: str, chunks: Iterable[bytes | memoryview], *,
                     declared_size: int | None, level: int = 0, modified: datetime | None = None) -> int:
        """An entry whose size is known only at its end: a deflate stream (stored blocks at
        `level` 0) followed by a data descriptor. Returns the number of bytes taken from `chunks`.

        The header says ZIP64 when `declared_size` may need it. When the real size makes that
        choice wrong, `EntrySizeError` is raised after the data and the writer must be abandoned:
        streaming readers size the descriptor by the real size, so it would lie. An unknown size
        (None) always says ZIP64, which such readers accept only past 4 GiB.
        """
        encoded = self._claim(name)
        stamp = self._stamp(modified)
        header_offset = self.offset
        zip64 = needs_zip64(declared_size, level=level)
        flags = self._flags(encoded, name) | FLAG_DESCRIPTOR
        extra = (struct.pack("<HHQQ", ZIP64_EXTRA, 16, 0, 0) if zip64 else b"") + stamp[2]
        sizes = (LIMIT32, LIMIT32) if zip64 else (0, 0)
        self._write(LOCAL.pack(LOCAL_SIGNATURE, self._version(zip64, DEFLATED), flags, DEFLATED,
                                stamp[1], stamp[0], 0, *sizes, len(encoded), len(extra))
                    + encoded + extra)
        data_offset = self.offset
        compressor = zlib.compressobj(level, zlib.DEFLATED, -15) if level else _StoredBlocks()
        crc = size = 0
        for chunk in chunks:
            crc = zlib.crc32(chunk, crc)
            size += len(chunk)
            if framed := compressor.compress(chunk):
                self._write(framed)
        self._write(compressor.flush())
        compressed = self.offset - data_offset
        if declared_size is not None and zip64 != (max(size, compressed) >= LIMIT32):
            raise EntrySizeError(name, declared_size, size)
        descriptor = DESCRIPTOR64 if zip64 else DESCRIPTOR32
        self._write(descriptor.pack(DESCRIPTOR_SIGNATURE, crc, compressed, size))
        self._record(encoded, flags, DEFLATED, crc, compressed, size, header_offset, stamp, zip64=zip64)
        return size

    @staticmethod
    def _flags(encoded: bytes, name: str) -> int:
        return FLAG_UTF8 if len(encoded) != len(name) else 0

    @staticmethod
    def _version(zip64: bool, method: int) -> int:
        return _VERSION_ZIP64 if zip64 else _VERSION_DEFLATE if method == DEFLATED else 10

    def _record(self, encoded: bytes, flags: int, method: int, crc: int, compressed: int,
                size: int, header_offset: int, stamp: Stamp, *, zip64: bool) -> None:
        """Spill the entry's central-directory record, ZIP64 fields for what overflows 32 bits
        (the central extended timestamp holds the modification time only, as the local one)."""
        extra = b""
        if size >= LIMIT32 or compressed >= LIMIT32 or header_offset >= LIMIT32:
            wide = [value for value in (size, compressed, header_offset) if value >= LIMIT32]
            extra = struct.pack(f"<HH{len(wide)}Q", ZIP64_EXTRA, 8 * len(wide), *wide)
            compressed, size, header_offset = (min(value, LIMIT32)
                                               for value in (compressed, size, header_offset))
        self._directory.write(CENTRAL.pack(
            CENTRAL_SIGNATURE, _MADE_BY_UNIX | _VERSION_ZIP64, self._version(zip64 or bool(extra), method),
            flags, method, stamp[1], stamp[0], crc, compressed, size, len(encoded),
            len(extra) + len(stamp[2]), 0, 0, 0, _REGULAR_FILE, header_offset) + encoded + extra + stamp[2])
        self.entries += 1

    def close(self) -> None:
        """Copy the central directory to the output and end the archive."""
        start = self.offset
        self._directory.seek(0)
        while block := self._directory.read(_SPILL_COPY_BYTES):
            self._write(block)
        self._directory.close()
        size = self.offset - start
        if self.entries >= LIMIT16 or size >= LIMIT32 or start >= LIMIT32:
            zip64_end = self.offset
            self._write(ZIP64_END.pack(ZIP64_END_SIGNATURE, ZIP64_END.size - 12,
                                        _MADE_BY_UNIX | _VERSION_ZIP64, _VERSION_ZIP64, 0, 0,
                                        self.entries, self.entries, size, start))
            self._write(ZIP64_LOCATOR.pack(ZIP64_LOCATOR_SIGNATURE, 0, zip64_end, 1))
        count = min(self.entries, LIMIT16)
        self._write(END.pack(END_SIGNATURE, 0, 0, count, count, min(size, LIMIT32),
                              min(start, LIMIT32), 0))

    def abandon(self) -> None:
        """Drop the spilled directory; whatever reached the output is not a complete zip."""
        self._directory.close()
