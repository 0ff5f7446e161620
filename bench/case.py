"""One measured case, run in a process of its own so its peak RSS is its own:
`python -m bench.case NAME '{"json": "arguments"}'` prints a JSON result on its last line."""

from __future__ import annotations

import hashlib
import json
import os
import sys
import time
import zipfile
import zlib
from pathlib import Path
from typing import Any

BUFFER = 1024 * 1024


def labvault_backup(database_url: str, files_url: str, backups_url: str, organization: str,
                    requested_by: str | None = None) -> dict[str, Any]:
    """The create-backup pipeline (the steps the flow's tasks call), without Prefect."""
    from sqlalchemy import select

    from labvault import backups
    from labvault.backups import BackupRequest, ProgressRecorder
    from labvault.db.engine import session_factory
    from labvault.db.models import Backup, BackupStatus
    from labvault.pricing import Pricing
    from labvault.settings import get_settings
    from labvault.storage.from_url import storage_for

    sessions = session_factory(database_url)
    files = storage_for(files_url, setting="files")
    archives = storage_for(backups_url, setting="backups")
    with sessions() as session:
        for stale in session.scalars(select(Backup.sid).where(Backup.status == BackupStatus.IN_PROGRESS)):
            backups.fail_backup(session, stale, "bench: left over from an interrupted run")
        sid = backups.start_backup(session, BackupRequest(organization, "bench", "",
                                                          requested_by or f"admin@{organization}"))
    progress = ProgressRecorder(sessions, sid)
    with sessions() as session, backups.open_archive(session, archives, sid) as archive:
        backups.copy_files(session, sid, files, archive, progress)
        copied = time.perf_counter()
        versions = backups.snapshot_versions(session, sid, archive, progress)
        snapshot_seconds = time.perf_counter() - copied
        sealed = archive.seal()
        backups.finish_backup(session, sid, sealed, run_id=None, file_path=archives.url(sealed.key),
                              pricing=Pricing.of(get_settings()))
    archives.delete(sealed.key)
    return {"bytes": sealed.size, "versions": versions, "files": sealed.files,
            "snapshot_seconds": snapshot_seconds}


def versions_archive(database_url: str, organization: str, storage: Any) -> tuple[str, int, float]:
    """A backup of the organization's versions alone, sealed in `storage`:
    (its key, the number of versions, the seconds the snapshot took)."""
    from labvault import backups
    from labvault.backups import BackupRequest, ProgressRecorder
    from labvault.db.engine import session_factory

    sessions = session_factory(database_url)
    with sessions() as session:
        sid = backups.start_backup(session, BackupRequest(organization, "bench", "", f"admin@{organization}"))
    started = time.perf_counter()
    with sessions() as session, backups.open_archive(session, storage, sid) as archive:
        count = backups.snapshot_versions(session, sid, archive, ProgressRecorder(sessions, sid))
        seconds = time.perf_counter() - started
        sealed = archive.seal()
    with sessions() as session:
        backups.fail_backup(session, sid, "bench: versions only")
    return sealed.key, count, seconds


def snapshot_only(database_url: str, organization: str, out: str, verify: bool = False) -> dict[str, Any]:
    """Only the versions snapshot, into a local archive that is then dropped; with `verify`,
    the archive is read back as the flow does after a backup."""
    from labvault.backups import verify_stored_archive
    from labvault.storage.folders import FsspecStorage

    storage = FsspecStorage(out)
    key, count, seconds = versions_archive(database_url, organization, storage)
    result: dict[str, Any] = {}
    if verify:
        started = time.perf_counter()
        report = verify_stored_archive(storage, key)
        result = {"verify_seconds": time.perf_counter() - started, "verified_entries": report.entries}
    storage.delete(key)
    return {"versions": count, "versions_per_second": count / seconds, **result}


def restore_only(database_url: str, organization: str, out: str) -> dict[str, Any]:
    """A backup of the organization's versions (not timed), then restored into an empty
    SQLite database, as `labvault restore` does: verified first, then written."""
    from labvault.db.engine import session_factory, upgrade_schema
    from labvault.restore import restore_archive
    from labvault.storage.folders import FsspecStorage

    storage = FsspecStorage(out)
    key, _, _ = versions_archive(database_url, organization, storage)
    target = Path(out) / "restored.db"
    target.unlink(missing_ok=True)
    upgrade_schema(f"sqlite:///{target}")
    started = time.perf_counter()
    with session_factory(f"sqlite:///{target}")() as session:
        report = restore_archive(lambda: storage.open_read(key), label=key, session=session,
                                 files_storage=FsspecStorage(str(Path(out) / "restored-files")))
    seconds = time.perf_counter() - started
    storage.delete(key)
    target.unlink()
    return {"versions": report.versions, "versions_per_second": report.versions / seconds}


def archive_writer(tree: str, out: str, keep: bool = False) -> dict[str, Any]:
    """The archive writer alone (no database, no files store): every file under `tree` as a
    streamed entry with its declared size, then the manifest; the cost of the zip layout.
    `out` is a folder or an s3:// URL; with `keep` the archive stays (bench/writer.zip)."""
    from datetime import datetime, timezone

    from labvault.archive.writer import ArchiveWriter
    from labvault.storage.from_url import storage_for

    storage = storage_for(out, setting="out")
    with ArchiveWriter(storage.open_write("bench/writer.zip"), key="bench/writer.zip",
                       manifest_header={"backup": {"sid": "bench"}, "organization": {"sid": "bench"},
                                        "created": datetime.now(timezone.utc).isoformat()},
                       organization_sid="bench", created=datetime.now(timezone.utc)) as archive:
        for path in sorted(Path(tree).rglob("*")):
            if path.is_file():
                with path.open("rb") as source:
                    archive.add_stream(f"bench/{path.name}", source, declared_size=path.stat().st_size,
                                       uid=path.name, original_name=path.name)
        sealed = archive.seal()
    if not keep:
        storage.delete(sealed.key)
    return {"bytes": sealed.size, "files": sealed.files}


def hash_all(tree: str) -> dict[str, Any]:
    """The floor for reading and checking every byte: SHA-256 and CRC-32 of each file."""
    total = 0
    buffer = bytearray(BUFFER)
    view = memoryview(buffer)
    for path in sorted(Path(tree).rglob("*")):
        if path.is_file():
            digest, crc = hashlib.sha256(), 0
            with path.open("rb") as source:
                while count := source.readinto(buffer):
                    digest.update(view[:count])
                    crc = zlib.crc32(view[:count], crc)
                    total += count
    return {"bytes": total}


def naive_zip(tree: str, out: str) -> dict[str, Any]:
    """What a developer would write first: zipfile, stored, SHA-256 in the same loop."""
    root = Path(tree)
    with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED, allowZip64=True) as archive:
        for path in sorted(root.rglob("*")):
            if path.is_file():
                digest = hashlib.sha256()
                with path.open("rb") as source, archive.open(str(path.relative_to(root)), "w",
                                                             force_zip64=True) as entry:
                    while chunk := source.read(BUFFER):
                        digest.update(chunk)
                        entry.write(chunk)
    size = os.path.getsize(out)
    os.unlink(out)
    return {"bytes": size}


def boto3_upload(path: str, bucket: str) -> dict[str, Any]:
    import boto3

    client = boto3.client("s3")
    client.upload_file(path, bucket, "bench/boto3-upload.bin")
    client.delete_object(Bucket=bucket, Key="bench/boto3-upload.bin")
    return {"bytes": os.path.getsize(path)}


def get_object_loop(bucket: str, prefix: str, concurrency: int) -> dict[str, Any]:
    """The peer for reading many objects: every object under `prefix` fetched whole with
    `get_object` by `concurrency` threads, as many requests in flight as labvault keeps."""
    from concurrent.futures import ThreadPoolExecutor

    import boto3
    from botocore.config import Config

    client = boto3.session.Session().client("s3", config=Config(max_pool_connections=concurrency + 2))
    keys = [item["Key"] for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
            for item in page.get("Contents", [])]

    def fetch(key: str) -> int:
        return len(client.get_object(Bucket=bucket, Key=key)["Body"].read())

    with ThreadPoolExecutor(concurrency) as pool:
        total = sum(pool.map(fetch, keys))
    return {"bytes": total, "files": len(keys)}


def start_up() -> dict[str, Any]:
    """What every labvault case pays before its first byte: Python and the imports of the pipeline."""
    import labvault.backups  # noqa: F401
    import labvault.storage.from_url  # noqa: F401

    return {}


def read_s3(bucket: str, key: str, how: str) -> dict[str, Any]:
    """One archive on S3 read by `how`: `get_object` (its body into /dev/null, the floor), or
    verified through `s3fs` (50 MiB range requests, the path before), `smart_open` (its S3
    reader) or `stream` (labvault's resuming stream, `S3Storage.open_read`)."""
    import boto3

    from labvault.archive.verify import verify_archive

    if how == "get_object":
        body = boto3.client("s3").get_object(Bucket=bucket, Key=key)["Body"]
        total = 0
        with open(os.devnull, "wb") as sink:
            while chunk := body.read(BUFFER):
                total += sink.write(chunk)
        return {"bytes": total}
    if how == "s3fs":
        import s3fs

        source = s3fs.S3FileSystem(skip_instance_cache=True).open(f"{bucket}/{key}", "rb")
    elif how == "smart_open":
        import smart_open

        source = smart_open.open(f"s3://{bucket}/{key}", "rb", compression="disable",
                                 transport_params={"client": boto3.client("s3")})
    else:
        from labvault.storage.s3 import S3Storage

        source = S3Storage(f"s3://{bucket}", setting="bench").open_read(key)
    with source:
        report = verify_archive(source, label=key)
    if not report.ok:
        raise RuntimeError(f"{how}: {report.problems}")
    return {"bytes": report.total_bytes, "entries": report.entries}


CASES = {"labvault": labvault_backup, "writer": archive_writer, "snapshot": snapshot_only, "restore": restore_only,
         "hash": hash_all, "naive": naive_zip, "boto3": boto3_upload, "get_loop": get_object_loop,
         "startup": start_up, "read_s3": read_s3}

if __name__ == "__main__":
    result = CASES[sys.argv[1]](**json.loads(sys.argv[2]))
    print(json.dumps(result))
