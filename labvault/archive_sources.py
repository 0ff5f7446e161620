"""Where an archive to verify or restore comes from: a backup sid, a path, or a URL.

An `s3://` URL or an http(s) link (a presigned S3 GET, a download link) is read as one
sequential stream that resumes (`labvault.storage.range_reader`). A link's signature must not
reach Prefect's stored run parameters: `labvault restore` hands the restore flow the link masked
(`hold_link`) and keeps the whole link in this process's memory, where `archive_opener` finds
it again; a flow run given a signed link as its parameter (from the UI) is refused.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import BinaryIO
from urllib.parse import urlsplit

import fsspec
from sqlalchemy.orm import Session

from labvault.archive.rules import DEFAULT_MAX_TOTAL_BYTES
from labvault.archive.safe_names import archive_key
from labvault.catalog import get_backup
from labvault.errors import InvalidInputError, LabvaultError, NotFoundError
from labvault.storage.range_openers import HttpRangeOpener, S3RangeOpener, s3_read_client
from labvault.storage.range_reader import RangeReader
from labvault.storage.store import Storage
from labvault.url_secrets import MASK, masked_url

LOOPBACK_HOSTS = ("localhost", "127.0.0.1", "::1")
_held_links: dict[str, str] = {}


def hold_link(source: str) -> str:
    """`source` as a flow run may store it: a link with its signature masked, the whole link
    kept in this process's memory for `archive_opener` (a run in this process finds it)."""
    shown = masked_url(source)
    if shown != source and _is_link(source):
        _held_links[shown] = source
    return shown


def refuse_signed_link(source: str, *, name: str) -> None:
    """Refuse a link whose signature or credential would be stored with a run's parameters."""
    if _is_link(source) and masked_url(source) != source:
        raise InvalidInputError(
            f"{name} {masked_url(source)!r} carries a signature, which Prefect would store in plain "
            "text with the run's parameters; give the link to `labvault restore` on the command "
            "line, which passes it to the run masked and keeps it in memory only")


def _is_link(source: str) -> bool:
    return source.lower().startswith(("http://", "https://"))


def archive_opener(source: str, session: Session, backups_storage: Storage,
                   max_bytes: int = DEFAULT_MAX_TOTAL_BYTES) -> tuple[Callable[[], BinaryIO], str]:
    """A function opening the archive for reading (called once per pass), and its label.

    `source` is a URL (`s3://…`, `https://…`, `file://…`), a path to a zip, or the sid of a
    backup whose archive is in the backups store. A URL's archive over `max_bytes` is refused
    before it is read.
    """
    if "://" in source or os.sep in source or source.endswith(".zip"):
        shown = masked_url(source)
        source = _held_links.get(source, source)
        if "::" in source:
            raise InvalidInputError(f"archive {shown!r} is a chain of URLs (::); give the zip's own "
                                    "path or URL")
        if _is_link(source):
            _check_link(source, shown)
        if "://" not in source and not os.path.exists(source):
            raise NotFoundError(f"archive {source!r} does not exist")
        if "://" not in source and not os.path.isfile(source):
            raise InvalidInputError(f"archive {source!r} is not a regular file; give the path of a zip")

        def open_url() -> BinaryIO:
            try:
                return _open_url(source, shown, max_bytes)
            except FileNotFoundError as exc:
                raise NotFoundError(f"archive {shown!r} does not exist") from exc
            except IsADirectoryError as exc:
                raise InvalidInputError(f"archive {shown!r} is a folder; give the URL of a zip") from exc
            except LabvaultError:  # the stream's own, naming the archive already
                raise
            except Exception as exc:  # fsspec's and its backends' (botocore's) errors alike
                reason = " ".join((getattr(exc, "strerror", None) or str(exc) or type(exc).__name__).split())
                raise InvalidInputError(f"cannot open archive {shown!r}: {reason}") from exc

        return open_url, shown
    backup = get_backup(session, source)
    key = archive_key(backup.organization_sid, backup.sid)
    if not backups_storage.exists(key):
        raise NotFoundError(f"backup {source} has no archive ({backup.status.label})")
    return (lambda: backups_storage.open_read(key)), f"backup {source}"


def _check_link(url: str, shown: str) -> None:
    """A link whose signature was masked on the way here cannot be read; plain http only on
    loopback (a presigned link's signature and the archive would cross the network readable)."""
    parts = urlsplit(url)
    if MASK in parts.query:
        raise InvalidInputError(f"archive {shown!r} is a link whose signature was masked; give the "
                                "whole link to `labvault restore` or `labvault backup verify`")
    if parts.scheme.lower() == "http" and (parts.hostname or "") not in LOOPBACK_HOSTS:
        raise InvalidInputError(f"archive {shown!r} is a plain http link to another machine; use "
                                "https (http is accepted on loopback only)")


def _open_url(url: str, shown: str, max_bytes: int) -> BinaryIO:
    """The object at `url`: S3 objects and http(s) links as a resuming stream, anything else
    through fsspec. On S3 the waits are bounded (`s3_read_client`)."""
    if _is_link(url):
        return RangeReader(HttpRangeOpener(url, shown), max_bytes=max_bytes)
    if url.startswith(("s3://", "s3a://")):
        bucket, _, key = url.partition("://")[2].partition("/")
        return RangeReader(S3RangeOpener(s3_read_client(), bucket, key, shown), max_bytes=max_bytes)
    return fsspec.open(url, "rb").open()
