"""Reading a zip's central directory one record at a time, without holding it.

`zipfile` builds a `ZipInfo` per entry (~0.5 KB) when it opens an archive, so checking a
million-version backup that way costs over a gigabyte. Here the end records are found from the
tail and the directory is parsed as a stream of small records; ZIP64 fields are honoured.

Every number the archive states is checked against the archive's real size before it is used:
the tail read is bounded, the directory must lie inside the file, its entry count must fit in
its size, and every offset and compressed size must lie before the directory. A source that is
not a regular file of known size (`/dev/zero`) reads as empty and is refused.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO

from labvault.zipstream.format import (
    CENTRAL,
    CENTRAL_SIGNATURE,
    END,
    FLAG_UTF8,
    LIMIT16,
    LIMIT32,
    LOCAL,
    ZIP64_END,
    ZIP64_END_SIGNATURE,
    ZIP64_LOCATOR,
    ZIP64_LOCATOR_SIGNATURE,
)

_MAX_COMMENT = 0xFFFF
_READ_BYTES = 1024 * 1024


class ZipStructureError(ValueError):
    """The bytes are not a zip this reader can follow (truncated, corrupt, multi-disk, lying
    sizes); the message says what, naming the entry where there is one."""


@dataclass(frozen=True, slots=True)
class DirectoryRecord:
    """One central-directory record: what a reader needs to find and check an entry."""

    name: str
    flags: int
    method: int
    crc: int
    compressed: int
    size: int
    header_offset: int
    external_attr: int


@dataclass(frozen=True)
class DirectoryLocation:
    """Where the central directory lies, as the end records say and the file's size allows."""

    entries: int
    size: int
    offset: int
    archive_size: int


def directory_location(source: BinaryIO) -> DirectoryLocation:
    """The central directory's place, from the end records; refuses numbers the file cannot hold."""
    end = source.seek(0, 2)
    tail_start = max(0, end - (END.size + _MAX_COMMENT + ZIP64_LOCATOR.size))
    source.seek(tail_start)
    tail = source.read(end - tail_start)
    position = tail.rfind(b"PK\x05\x06")
    # a signature too close to the end to hold a record is not one (`unpack_from` would raise)
    while position >= 0 and (len(tail) - position < END.size
                             or position + END.size + END.unpack_from(tail, position)[7] != len(tail)):
        position = tail.rfind(b"PK\x05\x06", 0, position)
    if position < 0:
        raise ZipStructureError("no end of central directory record")
    _, disk, directory_disk, _, entries, size, offset, _ = END.unpack_from(tail, position)
    if disk or directory_disk:
        raise ZipStructureError("multi-disk archives are not supported")
    directory_end = tail_start + position
    locator = position - ZIP64_LOCATOR.size
    if locator >= 0 and ZIP64_LOCATOR.unpack_from(tail, locator)[0] == ZIP64_LOCATOR_SIGNATURE:
        zip64_end = ZIP64_LOCATOR.unpack_from(tail, locator)[2]
        if zip64_end + ZIP64_END.size > tail_start + locator:
            raise ZipStructureError("ZIP64 end record points outside the archive")
        source.seek(zip64_end)
        record = source.read(ZIP64_END.size)
        if len(record) != ZIP64_END.size or ZIP64_END.unpack(record)[0] != ZIP64_END_SIGNATURE:
            raise ZipStructureError("ZIP64 end record missing where its locator points")
        entries, size, offset = ZIP64_END.unpack(record)[7:10]
        directory_end = zip64_end
    elif LIMIT16 == entries or LIMIT32 in (size, offset):
        raise ZipStructureError("end record needs ZIP64 fields that are missing")
    if offset + size > directory_end or entries * CENTRAL.size > size:
        raise ZipStructureError("central directory lies outside the archive or is too small "
                                "for its entry count")
    return DirectoryLocation(entries, size, offset, end)


def _widen(values: list[int], extra: bytes) -> list[int]:
    """Replace the 32-bit placeholders (size, compressed, offset, in that order) from ZIP64."""
    position = 0
    while position + 4 <= len(extra):
        kind, length = struct.unpack_from("<HH", extra, position)
        if kind == 1:
            field = extra[position + 4:position + 4 + length]
            index = 0
            for slot in range(3):
                if values[slot] == LIMIT32:
                    if index + 8 > len(field):
                        raise ZipStructureError("ZIP64 extra field is too short")
                    values[slot] = struct.unpack_from("<Q", field, index)[0]
                    index += 8
            return values
        position += 4 + length
    if LIMIT32 in values:
        raise ZipStructureError("entry needs a ZIP64 extra field that is missing")
    return values


def directory_records(source: BinaryIO,
                      location: DirectoryLocation | None = None) -> Iterator[DirectoryRecord]:
    """Every central-directory record in order; raises `ZipStructureError` on a malformed one,
    a name that is not valid UTF-8, or an entry said to lie past the directory's start."""
    location = location or directory_location(source)
    source.seek(location.offset)
    buffer = b""
    position = 0
    remaining = location.size

    def take(count: int) -> bytes:
        nonlocal buffer, position, remaining
        while len(buffer) - position < count:
            block = source.read(min(_READ_BYTES, remaining)) if remaining else b""
            if not block:
                raise ZipStructureError("central directory is truncated")
            remaining -= len(block)
            buffer = buffer[position:] + block
            position = 0
        position += count
        return buffer[position - count:position]

    for _ in range(location.entries):
        fields = CENTRAL.unpack(take(CENTRAL.size))
        if fields[0] != CENTRAL_SIGNATURE:
            raise ZipStructureError("bad central directory record signature")
        flags, method, crc = fields[3], fields[4], fields[7]
        name_length, extra_length, comment_length = fields[10:13]
        raw_name = take(name_length)
        extra = take(extra_length)
        take(comment_length)
        sizes = _widen([fields[9], fields[8], fields[16]], extra)
        try:
            name = raw_name.decode("utf-8" if flags & FLAG_UTF8 else "cp437")
        except UnicodeDecodeError:
            raise ZipStructureError(f"entry name {raw_name[:80]!r} is not valid UTF-8") from None
        if sizes[2] + LOCAL.size + sizes[1] > location.offset:
            raise ZipStructureError(f"entry {name!r} is said to lie past the start of the "
                                    "central directory")
        yield DirectoryRecord(name, flags, method, crc, sizes[1], sizes[0], sizes[2], fields[15])
