"""What a trustworthy archive is: the limits, the name rules and the report both verifiers share.

Two verifiers apply these rules: a one-pass scan with flat memory for archives laid out as
labvault writes them (`scan`), and the full check that names every problem of any zip
(`verify.ArchiveReader`).
"""

from __future__ import annotations

import posixpath
import re
import stat
from dataclasses import dataclass, field

from labvault.archive.safe_names import organization_folder
from labvault.storage.range_reader import MAX_OBJECT_BYTES

MANIFEST_NAME = "manifest.json"
MAX_MANIFEST_BYTES = 2 * 1024**3
DEFAULT_MAX_TOTAL_BYTES = MAX_OBJECT_BYTES  # an archive is read as one object's stream


@dataclass(frozen=True)
class ArchiveLimits:
    """What reading an archive may cost, whoever made it.

    ZIP bombs: an entry may not expand beyond `max_ratio` times its compressed size (once past
    `ratio_floor_bytes`), the whole archive not beyond `max_total_ratio` times the archive's own
    size (once past `total_ratio_floor_bytes`: 2,048 entries of 1 MiB each stay under the
    per-entry floor, their sum does not), and never beyond `max_total_bytes`
    (`LABVAULT_ARCHIVE_MAX_BYTES`). An archive not laid out as labvault writes it is checked by
    holding its directory and the manifest's paths, so at most `max_unordered_entries` entries
    (~700 bytes each: 100,000 entries took 70 MB).
    """

    max_total_bytes: int = DEFAULT_MAX_TOTAL_BYTES
    max_ratio: int = 200
    ratio_floor_bytes: int = 1024 * 1024
    max_total_ratio: int = 100
    total_ratio_floor_bytes: int = 256 * 1024**2
    max_unordered_entries: int = 100_000

    @classmethod
    def with_max_total(cls, max_total_bytes: int) -> "ArchiveLimits":
        """The default limits with the total cap a deployment set (`Settings.archive_max_bytes`)."""
        return cls(max_total_bytes=max_total_bytes)

    def is_bomb(self, size: int, compressed: int) -> bool:
        return size > self.ratio_floor_bytes and size > self.max_ratio * max(compressed, 1)

    def total_problem(self, declared: int, archive_size: int) -> str | None:
        """Why the entries' declared sizes, together, are refused, or None."""
        if declared > self.max_total_bytes:
            return (f"archive would expand to {declared} bytes, over the limit of {self.max_total_bytes} "
                    "(LABVAULT_ARCHIVE_MAX_BYTES)")
        if declared > self.total_ratio_floor_bytes and declared > self.max_total_ratio * max(archive_size, 1):
            return (f"archive of {archive_size} bytes would expand to {declared} bytes, over "
                    f"{self.max_total_ratio} times its size: refused as a ZIP bomb")
        return None


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
    if _DOT_PARTS.search(name) or posixpath.normpath(name) != name:
        return "climbs out of its folder (..)"
    if stat.S_ISLNK(external_attr >> 16):
        return "is a symbolic link"
    if _CONTROL.search(name):
        return "has control characters in its name"
    return None


# Checked once per entry of a million-entry archive: regular expressions, not Python loops.
_DOT_PARTS = re.compile(r"(^|/)\.{1,2}(/|$)")
_CONTROL = re.compile(r"[\x00-\x1f]")


def organization_folder_of(manifest_name: str, organization_sid: str) -> str | None:
    """The folder the manifest at `manifest_name` is in, when it is the organization's: its sid
    as it is (every archive before issue 18, and most since) or as `organization_folder` makes it
    safe for Windows; None otherwise."""
    folder = manifest_name.split("/", 1)[0]
    if manifest_name != f"{folder}/{MANIFEST_NAME}":
        return None
    return folder if folder in (organization_sid, organization_folder(organization_sid)) else None


def is_manifest_name(name: str) -> bool:
    """`<organization>/manifest.json`, one folder deep."""
    return name.count("/") == 1 and name.endswith("/" + MANIFEST_NAME)
