"""Entry names that every unzip tool extracts where they belong.

The original name is kept in the manifest; the entry name only has to be safe, readable and
unique (uniqueness comes from the uid prefix, not from the name).
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

MAX_NAME_BYTES = 200
_UNSAFE_CHARACTERS = re.compile(r'[/\\:*?"<>|]')
_DOT_RUNS = re.compile(r"\.{2,}")
_PLAIN = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]{0,199}")  # no leading dot


def _drop_control_characters(text: str) -> str:
    # Category C covers control, format (bidi marks), surrogate, private-use and unassigned.
    return "".join(ch for ch in text if unicodedata.category(ch)[0] != "C")


def _truncate_utf8(text: str, limit: int) -> str:
    encoded = text.encode("utf-8")
    if len(encoded) <= limit:
        return text
    return encoded[:limit].decode("utf-8", errors="ignore")


def safe_component(name: str, fallback: str = "file") -> str:
    """One path component: no separators, no `..`, no control characters, at most 200 bytes.

    The extension survives truncation so the file still opens with the right program.
    """
    if _PLAIN.fullmatch(name) and ".." not in name and not name.endswith("."):
        return name  # the common case (sids, uids): nothing to do, and it is on the hot path
    text = unicodedata.normalize("NFC", name or "")
    text = _drop_control_characters(text)
    text = _UNSAFE_CHARACTERS.sub("_", text)
    text = _DOT_RUNS.sub(".", text)
    text = " ".join(text.split()).strip(" .")
    if not text:
        return fallback
    stem, dot, extension = text.rpartition(".")
    if not dot or not stem or len(extension.encode("utf-8")) > 16:
        return _truncate_utf8(text, MAX_NAME_BYTES).rstrip(" .") or fallback
    stem = _truncate_utf8(stem, MAX_NAME_BYTES - len(extension.encode("utf-8")) - 1).rstrip(" .")
    return f"{stem}.{extension}" if stem else fallback


def file_entry_name(organization_sid: str, uid: str, original_name: str) -> str:
    """`<org sid>/<uid>_<safe name>`, the archive path of an uploaded file."""
    return f"{safe_component(organization_sid, 'organization')}/{safe_component(uid, 'uid')}_{safe_component(original_name)}"


@lru_cache(maxsize=64)
def _organization_folder(organization_sid: str) -> str:
    return safe_component(organization_sid, "organization")


def version_entry_name(organization_sid: str, version_sid: str) -> str:
    """`<org sid>/versions/<version sid>.json`, the archive path of a record version."""
    return f"{_organization_folder(organization_sid)}/versions/{safe_component(version_sid, 'version')}.json"


def archive_key(organization_sid: str, backup_sid: str) -> str:
    """`<org sid>/<backup sid>.zip`, the archive's key in the backups store."""
    return f"{safe_component(organization_sid, 'organization')}/{safe_component(backup_sid, 'backup')}.zip"


def manifest_entry_name(organization_sid: str) -> str:
    return f"{safe_component(organization_sid, 'organization')}/manifest.json"
