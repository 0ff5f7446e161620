"""What a trustworthy archive is: the limits, the name rules and the report both verifiers share.

Two verifiers apply these rules: a one-pass scan with flat memory for archives laid out as
labvault writes them (`archive_scan`), and the full check that names every problem of any zip
(`verify.ArchiveReader`).
"""

from __future__ import annotations

import posixpath
import stat
from dataclasses import dataclass, field

MANIFEST_NAME = "manifest.json"
MAX_MANIFEST_BYTES = 2 * 1024**3


@dataclass(frozen=True)
class ArchiveLimits:
    """Refuse ZIP bombs: an entry may not expand beyond `max_ratio` times its compressed size
    (once past `ratio_floor_bytes`), and the whole archive beyond `max_total_bytes`."""

    max_total_bytes: int = 10 * 1024**4
    max_ratio: int = 200
    ratio_floor_bytes: int = 1024 * 1024

    def is_bomb(self, size: int, compressed: int) -> bool:
        return size > self.ratio_floor_bytes and size > self.max_ratio * max(compressed, 1)


@dataclass
class VerifyReport:
    """What verification found; `problems` name each bad entry, one line each."""

    source: str
    organization_sid: str | None = None
    backup_sid: str | None = None
    entries: int = 0
    versions: int = 0
    files: int = 0
    total_bytes: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def unsafe_name_reason(name: str, external_attr: int) -> str | None:
    """Why an entry could not be extracted safely anywhere, or None."""
    if name.startswith("/") or "\\" in name or (len(name) > 1 and name[1] == ":"):
        return "has an absolute path"
    if any(part in ("..", ".") for part in name.split("/")) or posixpath.normpath(name) != name:
        return "climbs out of its folder (..)"
    if stat.S_ISLNK(external_attr >> 16):
        return "is a symbolic link"
    if any(ord(ch) < 32 for ch in name):
        return "has control characters in its name"
    return None


def is_manifest_name(name: str) -> bool:
    """`<organization>/manifest.json`, one folder deep."""
    return name.count("/") == 1 and name.endswith("/" + MANIFEST_NAME)
