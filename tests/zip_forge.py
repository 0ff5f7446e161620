"""Hand-made zips for hostile-archive tests: every field a test may want to lie in is an argument.

Readable on purpose: a test says which field lies (a method, a flag, an offset, a name that is
not UTF-8, a deflate stream longer than declared) and the builder writes the rest honestly.
"""

from __future__ import annotations

import hashlib
import json
import struct
import zlib
from dataclasses import dataclass, field
from typing import Any

from labvault.zipstream.format import (
    CENTRAL,
    CENTRAL_SIGNATURE,
    DEFLATED,
    END,
    END_SIGNATURE,
    FLAG_UTF8,
    LOCAL,
    LOCAL_SIGNATURE,
    STORED,
    ZIP64_END,
    ZIP64_END_SIGNATURE,
    ZIP64_LOCATOR,
    ZIP64_LOCATOR_SIGNATURE,
)


@dataclass
class Forged:
    """One entry: its name (bytes allowed, for names that are not UTF-8) and its bytes; any
    field left None is computed honestly from `data`."""

    name: str | bytes
    data: bytes
    method: int = STORED
    flags: int = FLAG_UTF8
    size: int | None = None
    crc: int | None = None
    body: bytes | None = None  # the stored or compressed bytes as written
    header_offset: int | None = None  # where the directory says the local header is
    external_attr: int = 0
    zip64_offset: int | None = None  # a ZIP64 extra field in the directory with this offset

    def raw_name(self) -> bytes:
        return self.name if isinstance(self.name, bytes) else self.name.encode("utf-8")

    def written(self) -> bytes:
        if self.body is not None:
            return self.body
        if self.method == DEFLATED:
            compressor = zlib.compressobj(6, zlib.DEFLATED, -15)
            return compressor.compress(self.data) + compressor.flush()
        return self.data


def forge(entries: list[Forged]) -> bytes:
    """The zip: local headers and bodies in order, then the directory and end record."""
    out = bytearray()
    directory = bytearray()
    for entry in entries:
        name, body = entry.raw_name(), entry.written()
        crc = zlib.crc32(entry.data) if entry.crc is None else entry.crc
        size = len(entry.data) if entry.size is None else entry.size
        offset = len(out)
        out += LOCAL.pack(LOCAL_SIGNATURE, 20, entry.flags, entry.method, 0, 0x21, crc,
                          len(body), size, len(name), 0) + name + body
        extra = b""
        directory_offset = offset if entry.header_offset is None else entry.header_offset
        if entry.zip64_offset is not None:
            extra = struct.pack("<HHQ", 1, 8, entry.zip64_offset)
            directory_offset = 0xFFFFFFFF
        directory += CENTRAL.pack(CENTRAL_SIGNATURE, 20, 20, entry.flags, entry.method, 0, 0x21, crc,
                                  len(body), size, len(name), len(extra), 0, 0, 0,
                                  entry.external_attr, directory_offset) + name + extra
    start = len(out)
    out += directory
    out += END.pack(END_SIGNATURE, 0, 0, len(entries), len(entries), len(directory), start, 0)
    return bytes(out)


def forge_zip64_end(entries: int, directory_size: int, directory_offset: int) -> bytes:
    """ZIP64 end record and locator claiming a directory where the caller says, then an end record."""
    record = ZIP64_END.pack(ZIP64_END_SIGNATURE, ZIP64_END.size - 12, 45, 45, 0, 0, entries, entries,
                            directory_size, directory_offset)
    locator = ZIP64_LOCATOR.pack(ZIP64_LOCATOR_SIGNATURE, 0, 0, 1)
    end = END.pack(END_SIGNATURE, 0, 0, 0xFFFF, 0xFFFF, 0xFFFFFFFF, 0xFFFFFFFF, 0)
    return record + locator + end


ORG = "org-h"


def manifest(entries: list[dict[str, Any]], org: str = ORG, **header: Any) -> dict[str, Any]:
    """A manifest for `entries`, honest unless `header` overrides a field."""
    return {"format_version": 1, "organization": {"sid": org, "name": "H"}, "backup": {"sid": "bk-h"},
            "created": "2026-01-01T00:00:00+00:00",
            "counts": {"versions": sum(e.get("kind") == "version" for e in entries),
                       "files": sum(e.get("kind") == "file" for e in entries)},
            "total_bytes": sum(e["size"] for e in entries if isinstance(e.get("size"), int)),
            "entries": entries, **header}


def version_document(sid: str, **fields: Any) -> bytes:
    document = {"sid": sid, "record_sid": "r1", "number": 1, "created_at": "2026-01-01T00:00:00+00:00",
                "created_by": "a@b.example", "data": {"x": 1}, **fields}
    return json.dumps(document).encode()


def described(path: str, data: bytes, kind: str = "file", org: str = ORG, **fields: Any) -> dict[str, Any]:
    """A manifest entry describing `data` honestly; `fields` add or override."""
    entry: dict[str, Any] = {"path": path, "kind": kind, "size": len(data),
                             "sha256": hashlib.sha256(data).hexdigest()}
    if kind == "file":
        uid = path.rsplit("/", 1)[-1].split("_", 1)[0]
        entry.update(uid=uid, original_name="name.bin", storage_key=f"{org}/{uid}",
                     created_at="2026-01-01T00:00:00+00:00")
    entry.update(fields)
    return entry


@dataclass
class ArchivePlan:
    """Entries with their bytes and manifest lines; `build()` writes a labvault-layout zip."""

    items: list[tuple[Forged, dict[str, Any]]] = field(default_factory=list)
    header: dict[str, Any] = field(default_factory=dict)
    org: str = ORG

    def file(self, uid: str, data: bytes, **fields: Any) -> "ArchivePlan":
        path = f"{self.org}/{uid}_name.bin"
        self.items.append((Forged(path, data), described(path, data, org=self.org, **fields)))
        return self

    def version(self, sid: str, document: bytes | None = None, **fields: Any) -> "ArchivePlan":
        path = f"{self.org}/versions/{sid}.json"
        data = version_document(sid) if document is None else document
        self.items.append((Forged(path, data, method=DEFLATED),
                           described(path, data, "version", org=self.org, **fields)))
        return self

    def build(self) -> bytes:
        lines = manifest([line for _, line in self.items], org=self.org, **self.header)
        data = json.dumps(lines).encode()
        return forge([entry for entry, _ in self.items]
                     + [Forged(f"{self.org}/manifest.json", data, method=DEFLATED)])
