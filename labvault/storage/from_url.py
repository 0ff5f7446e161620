"""Which store a URL or a setting names: S3 for `s3://`, a folder otherwise."""

from __future__ import annotations

from labvault.settings import Settings
from labvault.storage.folders import FsspecStorage
from labvault.storage.s3 import DEFAULT_PART_SIZE, S3Credentials, S3Storage
from labvault.storage.store import Storage


def storage_for(url: str, *, setting: str, part_size: int = DEFAULT_PART_SIZE,
                s3_credentials: S3Credentials | None = None, object_lock: str = "") -> Storage:
    """The storage behind a URL: S3 for `s3://` (with `s3_credentials` when given, locking what
    it is told to in `object_lock` mode), the renaming fsspec storage otherwise."""
    if url.startswith(("s3://", "s3a://")):
        return S3Storage(url, setting=setting, part_size=part_size, credentials=s3_credentials,
                         object_lock=object_lock)
    return FsspecStorage(url, setting=setting)


def files_store(settings: Settings, s3_credentials: S3Credentials | None = None) -> Storage:
    """The uploaded-files store named by `LABVAULT_FILES_URL`."""
    return storage_for(settings.files_url, setting="LABVAULT_FILES_URL",
                       part_size=settings.s3_part_size_mb * 1024 * 1024, s3_credentials=s3_credentials)


def backups_store(settings: Settings, s3_credentials: S3Credentials | None = None) -> Storage:
    """The archive store named by `LABVAULT_BACKUPS_URL`."""
    return storage_for(settings.backups_url, setting="LABVAULT_BACKUPS_URL",
                       part_size=settings.s3_part_size_mb * 1024 * 1024, s3_credentials=s3_credentials,
                       object_lock=settings.s3_object_lock)
