"""Reading a manifest's bytes into its header and its entries, in bounded memory.

labvault writes one entry per line between `"entries": [` and `]`. Such a manifest is read line
by line: each line is at most `MAX_LINE_BYTES`, header and tail together at most
`MAX_HEADER_BYTES`, and every entry line is validated against the schema as it is read and
spilled to a temporary file, so a manifest of any length holds about a megabyte of parsed state.
A manifest written another way (a hand-made or re-serialised one, all on one line) is parsed
whole only up to `MAX_COMPACT_BYTES`. Either way the bytes come from a reader that stops at the
entry's declared size.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterable, Iterator
from typing import IO

from labvault.archive.manifest_schema import (
    FileEntry,
    ManifestHeader,
    VersionEntry,
    parse_entry,
    parse_header,
)
from labvault.errors import InvalidInputError

MAX_LINE_BYTES = 64 * 1024
MAX_HEADER_BYTES = 1024 * 1024
MAX_COMPACT_BYTES = 4 * 1024 * 1024
_ENTRIES_LINE = b'  "entries": ['
_ENTRIES_END = b"  ]"


class Manifest:
    """A manifest read: its header, and its entries spilled one per line (close it to drop them)."""

    def __init__(self, header: ManifestHeader, lines: IO[bytes]) -> None:
        self.header = header
        self._lines = lines

    @property
    def organization_sid(self) -> str:
        return self.header.organization.sid

    def entries(self) -> Iterator[VersionEntry | FileEntry]:
        """The entries in the manifest's order, each parsed from its line as it is asked for."""
        self._lines.seek(0)
        for number, line in enumerate(self._lines):
            yield parse_entry(line, number=number)

    def close(self) -> None:
        self._lines.close()


def read_manifest(chunks: Iterable[bytes], *, declared_size: int, max_entries: int) -> Manifest:
    """The manifest from its bytes; raises `InvalidInputError` naming what is wrong."""
    lines = tempfile.TemporaryFile()
    try:
        if declared_size <= MAX_COMPACT_BYTES:
            header = _read_whole(b"".join(chunks), lines, max_entries)
        else:
            header = _read_lines(chunks, lines, max_entries)
    except BaseException:
        lines.close()
        raise
    return Manifest(header, lines)


def _read_whole(data: bytes, lines: IO[bytes], max_entries: int) -> ManifestHeader:
    """A small manifest, however it is laid out."""
    try:
        document = json.loads(data)
    except (ValueError, RecursionError) as exc:
        raise InvalidInputError(f"manifest is not JSON: {' '.join(str(exc).split())[:200]}") from None
    if not isinstance(document, dict) or not isinstance(document.get("entries"), list):
        raise InvalidInputError("manifest is malformed: it has no list of entries")
    entries = document.pop("entries")
    if len(entries) > max_entries:
        raise InvalidInputError(f"manifest lists {len(entries)} entries, more than the archive holds")
    header = parse_header(json.dumps(document))
    for number, entry in enumerate(entries):
        # ASCII: a lone surrogate ("\ud800") stays an escape, which the schema refuses
        line = json.dumps(entry).encode()
        parse_entry(line, number=number)
        lines.write(line + b"\n")
    return header


def _read_lines(chunks: Iterable[bytes], lines: IO[bytes], max_entries: int) -> ManifestHeader:
    """A manifest laid out one entry per line, as labvault writes it."""
    header: list[bytes] = []
    tail: list[bytes] = []
    kept = count = 0
    section = "header"
    pending = b""
    for chunk in chunks:
        *complete, pending = (pending + chunk).split(b"\n")
        if len(pending) > MAX_LINE_BYTES:
            raise InvalidInputError(f"manifest has a line longer than {MAX_LINE_BYTES} bytes; "
                                    "labvault writes one entry per line")
        for line in complete:
            if section == "entries":
                if line == _ENTRIES_END:
                    section = "tail"
                    continue
                if line:
                    if count >= max_entries:
                        raise InvalidInputError("manifest lists more entries than the archive holds")
                    entry = line.strip().rstrip(b",")
                    parse_entry(entry, number=count)
                    lines.write(entry + b"\n")
                    count += 1
                    continue
                # A blank line (labvault writes one, in an empty list) costs the budget below: a
                # megabyte of them inflates to a million lines, each a turn of this loop.
            elif section == "header" and line == _ENTRIES_LINE:
                section = "entries"
                continue
            kept += len(line) + 1
            if kept > MAX_HEADER_BYTES:
                raise InvalidInputError(f"manifest holds more than {MAX_HEADER_BYTES} bytes outside its entry "
                                        "lines; labvault writes its header, then one entry per line")
            if section != "entries":
                (header if section == "header" else tail).append(line)
    if section != "tail" or pending:
        raise InvalidInputError("manifest ends before its list of entries does")
    return parse_header(b"\n".join(header) + b'\n"entries": []\n' + b"\n".join(tail))
