"""Downloading an archive: the file itself with HTTP Range (interrupted downloads resume), or a
short-lived presigned URL for an S3 store, which then serves the bytes and the ranges itself."""

from __future__ import annotations

from datetime import timedelta

from fastapi.responses import FileResponse, RedirectResponse, Response

from labvault.archive.safe_names import archive_key
from labvault.db.models import Backup
from labvault.storage.store import Storage

PRESIGNED_LIFETIME = timedelta(minutes=5)


class ArchiveFile(FileResponse):
    """Starlette's file response in 4 MiB reads rather than 64 KiB: each read is a hop to a
    worker thread and a send through the event loop, which at 64 KiB capped a 1 GB download
    well below what the disk and loopback give (see bench/web_page.py)."""

    chunk_size = 4 * 1024 * 1024


def archive_response(backup: Backup, storage: Storage) -> Response:
    """The archive of a Completed backup the caller may download."""
    key = archive_key(backup.organization_sid, backup.sid)
    path = storage.local_path(key)
    if path is None:
        return RedirectResponse(storage.download_link(key, PRESIGNED_LIFETIME), status_code=303)
    # Starlette's FileResponse sends Content-Length, answers Range and If-Range, and streams.
    return ArchiveFile(path, media_type="application/zip", filename=f"{backup.sid}.zip",
                       content_disposition_type="attachment")
