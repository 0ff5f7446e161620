"""The narrow protocol the backup pipeline talks to: keys, pending writes, partial writes.

The pipeline never calls fsspec or a cloud SDK itself. Keys are '/'-separated paths relative to
the store's root URL; a key that would escape the root is refused.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import BinaryIO, Protocol

from labvault.errors import InvalidInputError

PARTIAL_SUFFIX = ".partial"
# SigV4 presigned URLs live at most 7 days.
MAX_LINK_LIFETIME = timedelta(days=7)
PROBE_KEY = ".labvault-write-probe"


class PendingWrite(Protocol):
    """A write that readers cannot see until `commit()`; `abort()` removes every trace of it."""

    def write(self, data: bytes | memoryview) -> int: ...
    def commit(self) -> None: ...
    def abort(self) -> None: ...


@dataclass(frozen=True)
class PartialWrite:
    """A write left unfinished (a partial file, a pending multipart upload) by a dead run."""

    key: str
    started: datetime
    handle: str


@dataclass(frozen=True)
class Retention:
    """An object's S3 Object Lock retention: no one deletes that version before `until`."""

    mode: str  # "governance" or "compliance"
    until: datetime


class Storage(Protocol):
    """What labvault needs of a place that holds bytes."""

    def open_read(self, key: str) -> BinaryIO: ...
    def open_stream(self, key: str) -> BinaryIO: ...
    def open_write(self, key: str, expected_size: int | None = None) -> PendingWrite: ...
    def exists(self, key: str) -> bool: ...
    def is_file(self, key: str) -> bool: ...
    def modified(self, key: str) -> datetime: ...
    def delete(self, key: str) -> None: ...
    def move(self, source: str, target: str) -> None: ...
    def free_bytes(self) -> int | None: ...
    def list(self, prefix: str = "") -> list[str]: ...
    def list_partials(self) -> list[PartialWrite]: ...
    def check_writable(self) -> None: ...
    def discard_partial(self, partial: PartialWrite) -> None: ...
    def url(self, key: str) -> str: ...
    def download_link(self, key: str, lifetime: timedelta) -> str: ...
    def local_path(self, key: str) -> str | None: ...
    @property
    def remote(self) -> bool: ...


_FORBIDDEN_PARTS = frozenset(("", ".", ".."))  # what no part of a key may be
_CONTROL_CHARACTER = re.compile("[\x00-\x1f]")


def check_key(key: str) -> str:
    """Refuse keys that are empty, absolute, climb out of the store's root or hold control
    characters (a NUL cuts a local path short)."""
    if (not key or key.startswith("/") or "\\" in key or not _FORBIDDEN_PARTS.isdisjoint(key.split("/"))
            or _CONTROL_CHARACTER.search(key)):
        raise InvalidInputError(f"storage key {key!r} is not a plain relative path")
    return key

