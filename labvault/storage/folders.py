"""A store on a folder: any fsspec filesystem with rename (a local path, `memory://`).

Writes go to `<key>.partial` and are renamed onto the key when committed, so a reader never
sees half an object. The S3 store builds on this one.
"""

from __future__ import annotations

import os
import posixpath
import shutil
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any, BinaryIO

import fsspec
from fsspec.core import url_to_fs

from labvault.errors import InvalidInputError, TransientError
from labvault.storage.store import PARTIAL_SUFFIX, PROBE_KEY, PartialWrite, PendingWrite, check_key
from labvault.utc import as_utc


class _RenamingPendingWrite:
    """Bytes go to `<key>.partial`, renamed onto the key by `commit()`.

    The partial name is fixed per key, so a re-run of the same backup overwrites its own leftover
    and a cleaner can find orphans by suffix.
    """

    def __init__(self, fs: fsspec.AbstractFileSystem, path: str) -> None:
        self._fs = fs
        self._path = path
        self._partial = path + PARTIAL_SUFFIX
        fs.makedirs(posixpath.dirname(path), exist_ok=True)
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
    """A `Storage` over any fsspec URL with rename: a local folder (the default), `memory://`."""

    def __init__(self, url: str, *, setting: str = "storage URL", **options: Any) -> None:
        try:
            self.fs, root = url_to_fs(url, **options)
        except (ValueError, ImportError) as exc:
            raise InvalidInputError(
                f"{setting} {url!r}: {exc}; use a folder path or a URL such as s3://bucket/prefix"
            ) from exc
        self.url_root = url
        self.setting = setting
        self.root = root.rstrip("/")
        self._is_local = "file" in _protocols(self.fs)
        if self._is_local:
            self.root = os.path.abspath(self.root)

    def _path(self, key: str) -> str:
        return f"{self.root}/{check_key(key)}"

    def _key(self, path: str) -> str:
        return posixpath.relpath(self.fs._strip_protocol(path), self.root)

    @property
    def remote(self) -> bool:
        """Whether opening an object costs a round trip over the network (worth opening ahead)."""
        return not self._is_local

    def open_read(self, key: str) -> BinaryIO:
        return self._opened(key, lambda path: self.fs.open(path, "rb"))

    def _opened(self, key: str, open_path: Callable[[str], BinaryIO]) -> BinaryIO:
        try:
            return open_path(self._path(key))
        except FileNotFoundError:
            raise
        except PermissionError as exc:
            raise InvalidInputError(f"cannot read {key!r} from {self.url_root}: permission denied") from exc
        except OSError as exc:
            raise TransientError(f"cannot read {key!r} from {self.url_root}: {exc}") from exc

    def open_stream(self, key: str) -> BinaryIO:
        """The object read once from start to end (no seeking): what a copy needs. A local
        folder's file is opened as a plain file: fsspec's wrapper adds a Python call to every
        read, which a backup of 100,000 small files pays twice per file. A store with a cheaper
        sequential path (S3: one GET) overrides it."""
        if self._is_local:
            return self._opened(key, lambda path: open(path, "rb"))  # noqa: SIM115 (the caller closes it)
        return self.open_read(key)

    def open_write(self, key: str, expected_size: int | None = None) -> PendingWrite:
        """A pending write at `key`; `expected_size` (bytes, an estimate) lets a store size its
        parts, a folder has no use for it."""
        try:
            return _RenamingPendingWrite(self.fs, self._path(key))
        except (OSError, NotImplementedError) as exc:
            reason = (getattr(exc, "strerror", None) or str(exc)
                      or f"{_protocols(self.fs)[0]}:// stores cannot be written")
            raise InvalidInputError(
                f"{self.setting} {self.url_root!r}: cannot write there ({reason}); "
                "point it at a writable folder or bucket"
            ) from exc

    def check_writable(self) -> None:
        """Write and remove a probe, so a bad destination is refused before any work; folders
        made for it are removed again, so a command refused later leaves no trace."""
        made = []
        if self._is_local:
            folder = self.root
            while not os.path.exists(folder):
                made.append(folder)
                folder = os.path.dirname(folder)
        pending = self.open_write(PROBE_KEY)
        pending.abort()
        for folder in made:  # deepest first
            os.rmdir(folder)

    def exists(self, key: str) -> bool:
        return bool(self.fs.exists(self._path(key)))

    def is_file(self, key: str) -> bool:
        """An object at `key` itself, not a folder (or prefix) of others."""
        return bool(self.fs.isfile(self._path(key)))

    def modified(self, key: str) -> datetime:
        """When the object was last written, timezone-aware UTC."""
        return as_utc(self.fs.modified(self._path(key)))

    def delete(self, key: str) -> None:
        """Remove the object; idempotent, also when another process removes it at the same time."""
        try:
            self.fs.rm(self._path(key))
        except FileNotFoundError:
            pass
        except NotImplementedError as exc:
            raise InvalidInputError(f"{self.setting} {self.url_root!r}: cannot delete there "
                                    f"({_protocols(self.fs)[0]}:// stores are read-only)") from exc

    def move(self, source: str, target: str) -> None:
        """Put the object at `source` in place of `target` (a rename in a folder, a server-side
        copy then delete on S3); raises FileNotFoundError when `source` is gone."""
        target_path = self._path(target)
        self.fs.makedirs(posixpath.dirname(target_path), exist_ok=True)
        self.fs.mv(self._path(source), target_path)

    def free_bytes(self) -> int | None:
        """Bytes the store can still take, where that is known (a local folder's disk)."""
        if not self._is_local:
            return None
        folder = self.root
        while not os.path.exists(folder):
            folder = os.path.dirname(folder)
        return shutil.disk_usage(folder).free

    def list(self, prefix: str = "") -> list[str]:
        base = self._path(prefix) if prefix else self.root
        if not self.fs.exists(base):
            return []
        # The root is no key, yet s3fs's find returns it when it takes the root for an object: it
        # did on SeaweedFS once a failed restore's staged uploads beneath it were aborted.
        return sorted(self._key(path) for path in self.fs.find(base) if path != self.root)

    def list_partials(self) -> list[PartialWrite]:
        return [PartialWrite(key.removesuffix(PARTIAL_SUFFIX), self.modified(key), key)
                for key in self.list() if key.endswith(PARTIAL_SUFFIX)]

    def discard_partial(self, partial: PartialWrite) -> None:
        self.delete(partial.handle)

    def url(self, key: str) -> str:
        """Where the object lives: an absolute path locally, else a full URL."""
        path = self._path(key)
        return path if self._is_local else self.fs.unstrip_protocol(path)

    def download_link(self, key: str, lifetime: timedelta) -> str:
        """What a person opens to download: the path itself for a local folder."""
        return self.url(key)

    def local_path(self, key: str) -> str | None:
        """The object's file when the store is a local folder (served as a file), else None."""
        return self._path(key) if self._is_local else None



def _protocols(fs: fsspec.AbstractFileSystem) -> tuple[str, ...]:
    protocol = fs.protocol
    return (protocol,) if isinstance(protocol, str) else tuple(protocol)
