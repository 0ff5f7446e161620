"""The declared schema of what an archive says about itself: its manifest and its version documents.

Everything an archive brings is hostile until it passes these models: strict types (no string
for a number, no float for an integer), bounded lengths and values, bounded JSON nesting (the
JSON parser stops at 200 levels). Readers validate each manifest line as they read it and the
restore validates each version document before writing anything from it, so a malformed field
is refused as one line naming the entry, never a traceback from deeper down.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from labvault.errors import InvalidInputError
from labvault.utc import as_utc

FORMAT_VERSION = 1
MAX_SIZE = 2**63 - 1
MAX_VERSION_NUMBER = 2**31 - 1  # the versions.number column is a 32-bit integer
# A version document is parsed whole to be written as a row: 16 MiB of JSON took 390 MB. Backups
# refuse to write a larger one, so every archive they make can be restored.
MAX_VERSION_DOCUMENT_BYTES = 4 * 1024 * 1024

# A sid names a folder or a file in the archive and in the files store: no separators, no
# control characters, and no leading dot (".", "..", and ".restore", the staging prefix).
Sid = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[^./\\\x00-\x1f][^/\\\x00-\x1f]*$")]
Path = Annotated[str, Field(min_length=1, max_length=4096)]
Text = Annotated[str, Field(max_length=10_000)]
Size = Annotated[int, Field(ge=0, le=MAX_SIZE)]
Sha256 = Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]


def _in_utc(value: datetime) -> datetime:
    try:
        return as_utc(value)
    except OverflowError:
        raise ValueError("out of range once converted to UTC") from None


# A timestamp that can be stored: "0001-01-01T00:00:00+14:00" is a valid ISO date before UTC.
Timestamp = Annotated[datetime, AfterValidator(_in_utc)]


class _Strict(BaseModel):
    model_config = ConfigDict(strict=True, extra="ignore", frozen=True)


class VersionEntry(_Strict):
    """`sid` is there when the path does not say it (`safe_names.version_entry_name`)."""

    kind: Literal["version"]
    path: Path
    size: Size
    sha256: Sha256
    sid: Sid | None = None


class FileEntry(_Strict):
    kind: Literal["file"]
    path: Path
    size: Size
    sha256: Sha256
    uid: Sid
    original_name: Annotated[str, Field(max_length=4096)]
    record_sid: Sid | None = None
    content_type: Annotated[str, Field(max_length=255)] | None = None
    storage_key: Annotated[str, Field(min_length=1, max_length=1024)] | None = None
    created_at: Timestamp | None = None


Entry = Annotated[VersionEntry | FileEntry, Field(discriminator="kind")]
_ENTRY = TypeAdapter(Entry)


class _Organization(_Strict):
    sid: Sid
    name: Annotated[str, Field(max_length=255)] | None = None


class _Backup(_Strict):
    sid: Sid
    name: Text | None = None
    description: Text | None = None


class _Counts(_Strict):
    versions: Size
    files: Size


class ManifestHeader(_Strict):
    """The manifest without its entries."""

    format_version: Literal[1]
    organization: _Organization
    backup: _Backup
    created: Timestamp
    counts: _Counts
    total_bytes: Size
    labvault_version: Annotated[str, Field(max_length=64)] | None = None
    requested_by: Annotated[str, Field(max_length=320)] | None = None


class VersionDocument(_Strict):
    """`<org>/versions/<sid>.json`: one version of a record, as the backup wrote it."""

    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)

    sid: Sid
    record_sid: Sid
    number: Annotated[int, Field(ge=0, le=MAX_VERSION_NUMBER)]
    created_at: Timestamp
    created_by: Annotated[str, Field(max_length=320)] | None = None
    data: Any = None


def _first_problem(exc: ValidationError) -> str:
    error = exc.errors(include_url=False)[0]
    where = ".".join(str(part) for part in error["loc"])
    # the discriminated union prefixes the kind to the location: keep only the field
    if where.startswith(("version.", "file.")):
        where = where.split(".", 1)[1]
    message = error["msg"]
    return f"{where}: {message}" if where else message


def parse_entry(line: bytes | str, *, number: int) -> VersionEntry | FileEntry:
    """One manifest entry line; refused as one line naming the entry (its path if it has one)."""
    try:
        return _ENTRY.validate_json(line)
    except ValidationError as exc:
        raise InvalidInputError(f"manifest entry {_entry_label(line, number)} is malformed: "
                                f"{_first_problem(exc)}") from None


def parse_header(text: bytes | str) -> ManifestHeader:
    try:
        return ManifestHeader.model_validate_json(text)
    except ValidationError as exc:
        raise InvalidInputError(f"manifest is malformed: {_first_problem(exc)}") from None


def parse_version_document(data: bytes, *, path: str) -> VersionDocument:
    try:
        return VersionDocument.model_validate_json(data)
    except ValidationError as exc:
        if exc.errors()[0]["type"] == "json_invalid":
            raise InvalidInputError(f"version document {path!r} is not JSON: "
                                    f"{_first_problem(exc)}") from None
        raise InvalidInputError(f"version document {path!r} is malformed: {_first_problem(exc)}") from None


def _entry_label(line: bytes | str, number: int) -> str:
    """The entry's path when one can be read from it, else its position in the manifest."""
    try:
        path = json.loads(line).get("path")
    except (ValueError, AttributeError, RecursionError):
        path = None
    if isinstance(path, str) and len(path) <= 4096:
        return repr(path)
    return f"#{number + 1}"
