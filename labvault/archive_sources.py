"""Where an archive to verify or restore comes from: a backup sid, a path, or a URL."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import BinaryIO

import fsspec
from sqlalchemy.orm import Session

from labvault.catalog import get_backup
from labvault.errors import InvalidInputError, NotFoundError
from labvault.safe_names import archive_key
from labvault.storage import Storage
from labvault.url_secrets import masked_url


def archive_opener(source: str, session: Session,
                   backups_storage: Storage) -> tuple[Callable[[], BinaryIO], str]:
    """A function opening the archive for reading (called once per pass), and its label.

    `source` is a URL (`s3://…`, `file://…`), a path to a zip, or the sid of a backup whose
    archive is in the backups store.
    """
    if "://" in source or os.sep in source or source.endswith(".zip"):
        if "://" not in source and not os.path.exists(source):
            raise NotFoundError(f"archive {source!r} does not exist")
        if "://" not in source and not os.path.isfile(source):
            raise InvalidInputError(f"archive {source!r} is not a regular file; give the path of a zip")

        def open_url() -> BinaryIO:
            try:
                return fsspec.open(source, "rb").open()
            except FileNotFoundError as exc:
                raise NotFoundError(f"archive {source!r} does not exist") from exc
            except (ValueError, ImportError) as exc:
                raise InvalidInputError(f"cannot open {source!r}: {exc}") from exc

        return open_url, masked_url(source)
    backup = get_backup(session, source)
    key = archive_key(backup.organization_sid, backup.sid)
    if not backups_storage.exists(key):
        raise NotFoundError(f"backup {source} has no archive ({backup.status.label})")
    return (lambda: backups_storage.open_read(key)), f"backup {source}"
