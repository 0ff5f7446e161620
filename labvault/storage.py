"""Storage: the narrow protocol the backup pipeline talks to, and its fsspec implementation.

The pipeline never calls fsspec or a cloud SDK itself. Keys are '/'-separated paths relative to
the store's root URL; a key that would escape the root is refused.
"""

from __future__ import annotations

import os
import posixpath
from datetime import datetime, timezone
from typing import BinaryIO, Protocol

import fsspec
from fsspec.core import url_to_fs

from labvault.errors import InvalidInputError, MissingBlobError, TransientError

PARTIAL_SUFFIX = ".partial"


class PendingWrite(Protocol):
    """A write that readers cannot see until `commit()`; `abort()` removes every trace of it."""

    def write(self, data: bytes | memoryview) -> int: ...
    def commit(self) -> None: ...
    def abort(self) -> None: ...


class Storage(Protocol):
    """What labvault needs of a place that holds bytes."""

    def open_read(self, key: str) -> BinaryIO: ...
    def open_write(self, key: str) -> PendingWrite: ...
    def exists(self, key: str) -> bool: ...
    def size(self, key: str) -> int: ...
    def modified(self, key: str) -> datetime: ...
    def delete(self, key: str) -> None: ...
    def list(self, prefix: str = "") -> list[str]: ...
    def link(self, key: str) -> str: ...


def check_key(key: str) -> str:
    """Refuse keys that are empty, absolute or climb out of the store's root."""
    parts = key.split("/")
    if not key or key.startswith("/") or "\\" in key or any(p in ("", ".", "..") for p in parts):
        raise InvalidInputError(f"storage key {key!r} is not a plain relative path")
    return key


class _FsspecPendingWrite:
    """Bytes go to `<key>.partial`, renamed onto the key by `commit()`.

    The partial name is fixed per key, so a re-run of the same backup overwrites its own leftover
    and a cleaner can find orphans by suffix.
    """

    def __init__(self, fs: fsspec.AbstractFileSystem, path: str) -> None:
        self._fs = fs
        self._path = path
        self._partial = path + PARTIAL_SUFFIX
        self._fs.makedirs(posixpath.dirname(path), exist_ok=True)
        self._file = fs.open(self._partial, "wb")

    def write(self, data: bytes | memoryview) -> int:
        return self._file.write(data)

    def commit(self) -> None:
        self._file.close()
        self._fs.mv(self._partial, self._path)

    def abort(self) -> None:
        self._file.close()
        if self._fs.exists(self._partial):
            self._fs.rm(self._partial)


class FsspecStorage:
    """A `Storage` over any fsspec URL: a local folder (the default), `memory://`, `s3://`, …"""

    def __init__(self, url: str, *, setting: str = "storage URL") -> None:
        try:
            self.fs, root = url_to_fs(url)
        except (ValueError, ImportError) as exc:
            raise InvalidInputError(
                f"{setting} {url!r}: {exc}; use a folder path or a URL such as s3://bucket/prefix"
            ) from exc
        self.url = url
        self.root = root.rstrip("/")
        self._is_local = "file" in _protocols(self.fs)
        if self._is_local:
            self.root = os.path.abspath(self.root)

    def _path(self, key: str) -> str:
        return f"{self.root}/{check_key(key)}"

    def open_read(self, key: str) -> BinaryIO:
        try:
            return self.fs.open(self._path(key), "rb")
        except FileNotFoundError:
            raise
        except OSError as exc:
            raise TransientError(f"cannot read {key!r} from {self.url}: {exc}") from exc

    def open_write(self, key: str) -> PendingWrite:
        try:
            return _FsspecPendingWrite(self.fs, self._path(key))
        except PermissionError as exc:
            raise InvalidInputError(f"cannot write under {self.url}: permission denied") from exc

    def exists(self, key: str) -> bool:
        return bool(self.fs.exists(self._path(key)))

    def size(self, key: str) -> int:
        try:
            return int(self.fs.size(self._path(key)))
        except FileNotFoundError as exc:
            raise MissingBlobError(f"{key!r} is missing from {self.url}") from exc

    def modified(self, key: str) -> datetime:
        """When the object was last written, timezone-aware UTC."""
        stamp = self.fs.modified(self._path(key))
        return stamp.replace(tzinfo=timezone.utc) if stamp.tzinfo is None else stamp

    def delete(self, key: str) -> None:
        path = self._path(key)
        if self.fs.exists(path):
            self.fs.rm(path)

    def list(self, prefix: str = "") -> list[str]:
        base = self._path(prefix) if prefix else self.root
        if not self.fs.exists(base):
            return []
        return sorted(
            posixpath.relpath(self.fs._strip_protocol(p), self.root)
            for p in self.fs.find(base)
        )

    def link(self, key: str) -> str:
        """Where a user downloads the object: a local path here; presigned URLs come with S3."""
        path = self._path(key)
        return path if self._is_local else self.fs.unstrip_protocol(path)


def _protocols(fs: fsspec.AbstractFileSystem) -> tuple[str, ...]:
    protocol = fs.protocol
    return (protocol,) if isinstance(protocol, str) else tuple(protocol)


def files_store(url: str) -> Storage:
    """The uploaded-files store named by `LABVAULT_FILES_URL`."""
    return FsspecStorage(url, setting="LABVAULT_FILES_URL")


def backups_store(url: str) -> Storage:
    """The archive store named by `LABVAULT_BACKUPS_URL`."""
    return FsspecStorage(url, setting="LABVAULT_BACKUPS_URL")
