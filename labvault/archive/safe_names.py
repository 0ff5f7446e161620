"""Entry names that every unzip tool extracts where they belong, Windows included.

The original name is kept in the manifest; the entry name only has to be safe, readable and
unique (uniqueness comes from the uid prefix, not from the name). Windows Explorer fails on a
path over 260 UTF-16 units, the download folder included, so an entry path is at most
`MAX_ENTRY_PATH` units; names Windows reserves (`CON`, `NUL.txt`, `com1`…) are never a file name.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from functools import lru_cache

MAX_NAME_BYTES = 200
# Leaves 120 units for the folder it is extracted to: C:\Users\<name>\Downloads\<zip name>\ is
# about 60. Counted in UTF-16 units, as Windows counts (an emoji is 2).
MAX_ENTRY_PATH = 140
_EXTENSION_BYTES = 16
# Windows reserves these base names with any extension and trailing spaces ("nul.txt", "CON .a").
_RESERVED = re.compile(r"(?:CON|PRN|AUX|NUL|COM[1-9¹²³]|LPT[1-9¹²³]) *(?:\.|$)", re.IGNORECASE)
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
    if not dot or not stem or len(extension.encode("utf-8")) > _EXTENSION_BYTES:
        return _truncate_utf8(text, MAX_NAME_BYTES).rstrip(" .") or fallback
    stem = _truncate_utf8(stem, MAX_NAME_BYTES - len(extension.encode("utf-8")) - 1).rstrip(" .")
    return f"{stem}.{extension}" if stem else fallback


def _units(text: str) -> int:
    """The length Windows counts: UTF-16 code units."""
    return len(text) if text.isascii() else len(text.encode("utf-16-le")) // 2


def _cut(text: str, units: int) -> str:
    """`text` cut to at most `units` UTF-16 units, never inside a character."""
    return text[:units] if text.isascii() else text.encode("utf-16-le")[:2 * units].decode("utf-16-le", "ignore")


def _bounded(name: str, units: int) -> str:
    """A safe component cut to `units`, its extension kept when it leaves room for a stem."""
    if _units(name) <= units:
        return name
    stem, dot, extension = name.rpartition(".")
    if dot and stem and len(extension.encode("utf-8")) <= _EXTENSION_BYTES and _units(extension) + 2 <= units:
        stem = _cut(stem, units - _units(extension) - 1).rstrip(" .")
        if stem:
            return f"{stem}.{extension}"
    return _cut(name, units).rstrip(" .") or "file"


def file_entry_name(organization_sid: str, uid: str, original_name: str) -> str:
    """`<org sid>/<uid>_<safe name>`, the archive path of an uploaded file: at most
    `MAX_ENTRY_PATH` units, the name shortened (its extension kept), the uid never. Starting
    with `<uid>_`, it is never a name Windows reserves."""
    prefix = f"{organization_folder(organization_sid)}/{safe_component(uid, 'uid')}_"
    return prefix + _bounded(safe_component(original_name), MAX_ENTRY_PATH - _units(prefix))


@lru_cache(maxsize=64)
def organization_folder(organization_sid: str) -> str:
    """The archive's top folder: the organization's sid made safe, with a `_` before a name
    Windows reserves (`aux` → `_aux`)."""
    folder = safe_component(organization_sid, "organization")
    return f"_{folder}" if _RESERVED.match(folder) else folder


def version_entry_name(organization_sid: str, version_sid: str) -> str:
    """`<org sid>/versions/<version sid>.json`, the archive path of a record version. A sid that
    is not a safe Windows name as it is, or too long for `MAX_ENTRY_PATH`, becomes its safe form,
    shortened, and a tag of the whole sid (`<sid…>~<10 hex>.json`); the manifest then says the
    sid (`ArchiveWriter.add_json`), as the path no longer does."""
    folder = f"{organization_folder(organization_sid)}/versions/"
    name = safe_component(version_sid, "version")
    if name == version_sid and not _RESERVED.match(name) and _units(folder) + _units(name) + 5 <= MAX_ENTRY_PATH:
        return f"{folder}{name}.json"
    return _tagged(folder, name, "json", version_sid)


def _tagged(prefix: str, stem: str, extension: str, whole: str) -> str:
    """`<prefix><stem…>~<10 hex of whole>[.<extension>]`, the stem cut to fit `MAX_ENTRY_PATH`;
    a stem Windows reserves up to its first dot (`nul.txt~…`) gets a leading `_`."""
    tag = hashlib.blake2b(whole.encode("utf-8", "surrogatepass"), digest_size=5).hexdigest()
    stem = f"_{stem}" if _RESERVED.match(stem) else stem
    suffix = f"~{tag}" + (f".{extension}" if extension else "")
    return prefix + _cut(stem, max(0, MAX_ENTRY_PATH - _units(prefix) - len(suffix))).rstrip(" .") + suffix


def case_distinct_name(path: str) -> str:
    """`path` tagged so it no longer differs from another entry's name only by case (which
    Windows and macOS would extract as one file): `<stem…>~<10 hex>.<extension>`."""
    folder, slash, name = path.rpartition("/")
    stem, dot, extension = name.rpartition(".")
    if not (dot and stem and len(extension.encode("utf-8")) <= _EXTENSION_BYTES):
        stem, extension = name, ""
    return _tagged(folder + slash, stem, extension, path)


def archive_key(organization_sid: str, backup_sid: str) -> str:
    """`<org sid>/<backup sid>.zip`, the archive's key in the backups store."""
    return f"{safe_component(organization_sid, 'organization')}/{safe_component(backup_sid, 'backup')}.zip"


def manifest_entry_name(organization_sid: str) -> str:
    return f"{organization_folder(organization_sid)}/manifest.json"
