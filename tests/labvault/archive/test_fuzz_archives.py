"""Fuzzing verification and restore with mutated archives (issue 13).

A small archive written by labvault itself is mutated: bytes flipped or overwritten with
integers at the zip records' fields, the archive truncated, ranges spliced, duplicated or cut,
entries re-zipped in another order, renamed, repeated or dropped, and manifest fields and
version documents rewritten with hostile values (wrong types, huge numbers, Infinity, nested
lists, negative sizes, paths outside the organization, another organization's keys, duplicate
uids). Re-zipped archives get honest sizes and SHA-256s before the hostile field goes in, so
the restore's deeper checks (ownership, double claims, version documents) are reached too.

Whatever the mutation:

- `verify_archive` returns a report or raises a `LabvaultError`; restore raises nothing else
  either, and never succeeds where verification found a problem;
- verify and restore together raise the process's peak RSS by less than `RSS_GROWTH_LIMIT`
  (the peak is reset before each example, so each is measured on its own);
- a refused restore leaves its target (a SQLite database holding another organization, for
  some examples part of this one too, and a files folder) as it was: every row of every table
  and every file's bytes hash the same before and after; a restore that succeeds changes no
  row or file of any organization but its archive's.

CI runs `LABVAULT_FUZZ_EXAMPLES` examples per test (60 by default, derandomized: the same ones
every run). A longer run, with fresh random examples each time:

    LABVAULT_FUZZ_EXAMPLES=5000 .venv/bin/python -m pytest tests/labvault/archive/test_fuzz_archives.py
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import random
import re
import shutil
import sqlite3
import struct
import uuid
import warnings
import zipfile
from collections.abc import Callable
from contextlib import closing
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import delete

from labvault.archive.safe_names import file_entry_name, version_entry_name
from labvault.archive.verify import verify_archive
from labvault.archive.writer import ArchiveWriter
from labvault.db.engine import engine_for, session_factory, upgrade_schema
from labvault.db.models import Backup, BackupStatus, File, Organization, Record, User, Version
from labvault.errors import InvalidInputError, LabvaultError
from labvault.restore import MergePolicy, restore_archive
from labvault.storage.folders import FsspecStorage

EXAMPLES = int(os.environ.get("LABVAULT_FUZZ_EXAMPLES", "60"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, derandomize="LABVAULT_FUZZ_EXAMPLES" not in os.environ,
                database=None, print_blob=True, suppress_health_check=[HealthCheck.too_slow])
RSS_GROWTH_LIMIT = 100 * 1024 * 1024  # the archives are ~25 KB: what they claim must not cost memory

ORG = "org-fz"
OTHER = "org-other"
CREATED = datetime(2026, 5, 1, 12, 0, tzinfo=timezone.utc)
FILES = [  # (original name, bytes): empty, tiny, awkward name, incompressible
    ("empty.txt", b""),
    ("hello.txt", b"hello, world"),
    ("../../etc/passwd", b"root:x:0:0::/root:/bin/sh\n" * 40),
    ("plate reader/run 3.bin", random.Random(13).randbytes(20_000)),
]
OWN_UIDS = [f"{ORG}-f{index}" for index in range(len(FILES))]
OWN_VERSION_SIDS = [f"{ORG}-rec-{record}-v{number}" for record in range(3) for number in (1, 2)]
OTHER_UIDS = [f"{OTHER}-f{index}" for index in range(3)]
OTHER_RECORDS = [f"{OTHER}-rec-{index}" for index in range(2)]
OTHER_VERSION_SIDS = [f"{record}-v1" for record in OTHER_RECORDS]


# --- the archive, and the targets it is restored into ---------------------------------------------

def write_archive(folder: Path) -> bytes:
    """A backup of ORG as the backup pipeline writes it: 6 versions, 4 files, the manifest last."""
    storage = FsspecStorage(str(folder))
    key = f"{ORG}/bk-fz.zip"
    header = {"backup": {"sid": "bk-fz", "name": "Nightly", "description": ""},
              "organization": {"sid": ORG, "name": "Fuzzed lab"},
              "created": CREATED.isoformat(), "requested_by": f"admin@{ORG}.example"}
    with ArchiveWriter(storage.open_write(key), key=key, manifest_header=header, organization_sid=ORG,
                       created=CREATED) as writer:
        for sid in OWN_VERSION_SIDS:
            record = sid.rsplit("-", 1)[0]
            writer.add_json(version_entry_name(ORG, sid), {
                "sid": sid, "record_sid": record, "number": int(sid[-1]),
                "created_at": (CREATED - timedelta(days=1)).isoformat(), "created_by": f"member@{ORG}.example",
                "data": {"title": "T", "value": 0.25, "unicode": "µg ✓", "nested": {"list": [1, 2]}}})
        for uid, (name, data) in zip(OWN_UIDS, FILES):
            writer.add_stream(file_entry_name(ORG, uid, name), io.BytesIO(data), declared_size=len(data),
                              uid=uid, original_name=name, record_sid=f"{ORG}-rec-0",
                              content_type="application/octet-stream", storage_key=f"{ORG}/{uid}",
                              created_at=(CREATED - timedelta(days=1)).isoformat())
        writer.seal()
    return (folder / key).read_bytes()


def fill_other_organization(url: str, files: FsspecStorage) -> None:
    """Another organization in the target: rows in every table, and blobs."""
    with session_factory(url)() as session:
        session.add(Organization(sid=OTHER, name="Another lab"))
        session.add(User(organization_sid=OTHER, email=f"admin@{OTHER}.example", name="Admin", is_admin=True))
        session.add_all(Record(sid=sid, organization_sid=OTHER, name=sid) for sid in OTHER_RECORDS)
        session.flush()
        session.add_all(Version(sid=sid, record_sid=sid.removesuffix("-v1"), organization_sid=OTHER, number=1,
                                data={"secret": sid}, created_at=CREATED) for sid in OTHER_VERSION_SIDS)
        for index, uid in enumerate(OTHER_UIDS):
            data = b"another organization's bytes %d" % index
            pending = files.open_write(f"{OTHER}/{uid}")
            pending.write(data)
            pending.commit()
            session.add(File(uid=uid, organization_sid=OTHER, record_sid=OTHER_RECORDS[0], name=f"o{index}.bin",
                             size=len(data), storage_key=f"{OTHER}/{uid}", created_at=CREATED))
        session.add(Backup(sid="bk-other", organization_sid=OTHER, name="Nightly",
                           status=BackupStatus.COMPLETED, date_created=CREATED))
        session.commit()


def keep_part_of_own_organization(url: str, files: FsspecStorage, archive: bytes) -> None:
    """ORG restored, then partly changed: a version gone, a blob gone, a blob's bytes changed,
    a user added, so `--merge skip` and `--merge overwrite` both have work to do."""
    with session_factory(url)() as session:
        restore_archive(lambda: io.BytesIO(archive), label="base", session=session, files_storage=files)
    with session_factory(url)() as session:
        session.execute(delete(Version).where(Version.sid == OWN_VERSION_SIDS[0]))
        session.add(User(organization_sid=ORG, email=f"admin@{ORG}.example", name="Admin", is_admin=True))
        session.commit()
    files.delete(f"{ORG}/{OWN_UIDS[1]}")
    pending = files.open_write(f"{ORG}/{OWN_UIDS[2]}")
    pending.write(b"changed since the backup")
    pending.commit()


@dataclass(frozen=True)
class Target:
    folder: Path

    @property
    def database(self) -> Path:
        return self.folder / "target.db"

    @property
    def url(self) -> str:
        return f"sqlite:///{self.database}"

    @property
    def files(self) -> FsspecStorage:
        return FsspecStorage(str(self.folder / "files"))


def target_digest(target: Target, *, outside: str | None = None) -> str:
    """A hash of every row of every table and of every file in the files folder (staging and
    partial writes included): what a refused restore must not change. With `outside`, that
    organization's rows and files are left out: what even a restore of it must not change."""
    digest = hashlib.sha256()
    with closing(sqlite3.connect(target.database)) as database:
        tables = [name for (name,) in database.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")]
        for table in tables:
            rows = database.execute(f'SELECT * FROM "{table}"')
            columns = [column[0] for column in rows.description]
            owner = "sid" if table == "organizations" else "organization_sid"
            at = columns.index(owner) if owner in columns else None
            for row in sorted(repr(row) for row in rows if at is None or row[at] != outside):
                digest.update(f"{table}:{row}\n".encode())
    root = target.folder / "files"
    for path in sorted(root.rglob("*")):
        key = path.relative_to(root).as_posix()
        if path.is_file() and not (outside and key.startswith(f"{outside}/")):
            digest.update(key.encode() + b"\0" + hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


class Targets:
    """Each kind of target made once; every example restores into a fresh copy of one."""

    KINDS = ("other organization", "part of its own too")

    def __init__(self, root: Path, archive: bytes) -> None:
        self.root = root
        for kind in self.KINDS:
            template = self._template(kind)
            upgrade_schema(template.url)
            fill_other_organization(template.url, template.files)
            if kind == "part of its own too":
                keep_part_of_own_organization(template.url, template.files, archive)
            engine_for(template.url).dispose()  # closes the connections: the WAL is folded in
        self.work = Target(root / "work")

    def _template(self, kind: str) -> Target:
        return Target(self.root / kind.replace(" ", "-"))

    def fresh(self, kind: str) -> Target:
        engine_for(self.work.url).dispose()  # no pooled connection to the file being replaced
        shutil.rmtree(self.work.folder, ignore_errors=True)
        shutil.copytree(self._template(kind).folder, self.work.folder)
        return self.work


class Fuzz:
    """What every example starts from: the archive and the targets (a plain class, so
    hypothesis prints its short repr with a failing example, not the archive's bytes)."""

    def __init__(self, archive: bytes, targets: Targets) -> None:
        self.archive = archive
        self.targets = targets

    def __repr__(self) -> str:
        return f"Fuzz(archive of {len(self.archive)} bytes)"


@pytest.fixture(scope="module")
def fuzz(tmp_path_factory: pytest.TempPathFactory) -> Fuzz:
    root = tmp_path_factory.mktemp("fuzz")
    archive = write_archive(root / "backups")
    return Fuzz(archive, Targets(root / "targets", archive))


def _status_bytes(field: str) -> int:
    match = re.search(rf"^{field}:\s+(\d+) kB$", Path("/proc/self/status").read_text(), re.MULTILINE)
    assert match, f"/proc/self/status has no {field}"
    return int(match[1]) * 1024


def reset_peak_rss() -> int:
    """Reset this process's peak RSS to its current RSS (Linux ≥ 4.0), and return it: each
    example's peak is measured on its own, not hidden under an earlier one's."""
    Path("/proc/self/clear_refs").write_text("5")
    return _status_bytes("VmHWM")


def peak_rss() -> int:
    return _status_bytes("VmHWM")


# --- the check every example passes ---------------------------------------------------------------

def check(fuzz: Fuzz, data: bytes, kind: str, merge: MergePolicy | None) -> None:
    """Only labvault errors escape verify and restore; a refused restore changes nothing, a
    restore that succeeds changes nothing of any other organization; memory stays bounded."""
    start_rss = reset_peak_rss()
    try:
        report = verify_archive(io.BytesIO(data), label="fuzzed.zip")
        problems, organization = report.problems, report.organization_sid
    except LabvaultError as exc:
        problems, organization = [str(exc)], None
    target = fuzz.targets.fresh(kind)
    before = target_digest(target)
    before_outside = target_digest(target, outside=organization) if organization else None
    try:
        with session_factory(target.url)() as session:
            restore_archive(lambda: io.BytesIO(data), label="fuzzed.zip", session=session,
                            files_storage=target.files, merge=merge)
    except LabvaultError as exc:
        assert target_digest(target) == before, f"a refused restore changed the target ({exc})"
    else:
        assert not problems, f"restore took an archive verification refused: {problems}"
        assert target_digest(target, outside=organization) == before_outside, (
            f"restoring {organization!r} changed rows or files of another organization")
    growth = peak_rss() - start_rss
    assert growth < RSS_GROWTH_LIMIT, f"verify and restore took {growth // 1024**2} MB above where they began"


# --- byte mutations -----------------------------------------------------------------------------

SIGNATURES = {"local header": b"PK\x03\x04", "data descriptor": b"PK\x07\x08",
              "directory record": b"PK\x01\x02", "zip64 end": b"PK\x06\x06", "zip64 locator": b"PK\x06\x07",
              "end record": b"PK\x05\x06"}


@dataclass(frozen=True)
class At:
    """A position: `delta` bytes past the `index`-th zip record of a kind (so mutations hit the
    fields readers trust), or anywhere (`index` modulo the length)."""

    kind: str
    index: int
    delta: int = 0

    def __call__(self, data: bytes) -> int:
        if not data:
            return 0
        signature = SIGNATURES.get(self.kind)
        starts = [found.start() for found in re.finditer(re.escape(signature), data)] if signature else []
        if not starts:
            return self.index % len(data)
        return min(starts[self.index % len(starts)] + self.delta, len(data) - 1)


@dataclass(frozen=True)
class Flip:
    at: At
    mask: int

    def __call__(self, data: bytes) -> bytes:
        if not data:
            return data
        position = self.at(data)
        return data[:position] + bytes([data[position] ^ self.mask]) + data[position + 1:]


@dataclass(frozen=True)
class Truncate:
    at: At

    def __call__(self, data: bytes) -> bytes:
        return data[:self.at(data)]


@dataclass(frozen=True)
class Splice:
    """Bytes from elsewhere in the archive written over these."""

    source: At
    length: int
    at: At

    def __call__(self, data: bytes) -> bytes:
        start, position = self.source(data), self.at(data)
        piece = data[start:start + self.length]
        return data[:position] + piece + data[position + len(piece):]


@dataclass(frozen=True)
class Duplicate:
    """A range inserted again at another place."""

    source: At
    length: int
    at: At

    def __call__(self, data: bytes) -> bytes:
        start, position = self.source(data), self.at(data)
        return data[:position] + data[start:start + self.length] + data[position:]


@dataclass(frozen=True)
class Cut:
    at: At
    length: int

    def __call__(self, data: bytes) -> bytes:
        position = self.at(data)
        return data[:position] + data[position + self.length:]


@dataclass(frozen=True)
class PutInt:
    """A little-endian integer written over a field: sizes, offsets, counts, lengths."""

    at: At
    width: int
    value: int

    def __call__(self, data: bytes) -> bytes:
        position = self.at(data)
        packed = (self.value % 256**self.width).to_bytes(self.width, "little")
        return (data[:position] + packed + data[position + self.width:])[:len(data)]


positions = st.builds(At, st.sampled_from([*SIGNATURES, "anywhere", "anywhere"]),
                      st.integers(0, 2**20), st.integers(0, 64))
lengths = st.one_of(st.integers(1, 64), st.integers(1, 64), st.integers(1, 40_000))
field_values = st.one_of(
    st.sampled_from([0, 1, 8, 22, 46, 0xFF, 0xFFFF, 0xFFFFFFFF, 2**31, 2**63, 2**64 - 1]), st.integers(0, 2**64 - 1))
byte_mutations = st.one_of(
    st.builds(Flip, positions, st.integers(1, 255)),
    st.builds(Truncate, positions),
    st.builds(Splice, positions, lengths, positions),
    st.builds(Duplicate, positions, lengths, positions),
    st.builds(Cut, positions, lengths),
    st.builds(PutInt, positions, st.sampled_from([1, 2, 4, 8]), field_values),
)
target_kinds = st.sampled_from(Targets.KINDS)
merges = st.sampled_from([None, MergePolicy.SKIP, MergePolicy.OVERWRITE])


@FUZZ
@given(mutations=st.lists(byte_mutations, min_size=1, max_size=3), kind=target_kinds, merge=merges)
def test_byte_mutations_are_refused_or_restored_never_anything_else(
        fuzz: Fuzz, mutations: list[Callable[[bytes], bytes]], kind: str, merge: MergePolicy | None) -> None:
    data = fuzz.archive
    for mutate in mutations:
        data = mutate(data)
    check(fuzz, data, kind, merge)


# --- re-zipped archives with hostile manifests and version documents -------------------------------

@dataclass(frozen=True)
class Raw:
    """JSON text put in as it is: what `json.dumps` never writes (a lone surrogate escape, a
    number too large for a float or too long for `int`, duplicate keys, deep nesting)."""

    text: str


RAW_TOKENS = ["1e400", "-1e400", "NaN", "Infinity", "-Infinity", "1" + "0" * 5000, "-0", "1.0", "1e2", "0x10",
              '"\\ud800"', '"\\udfff\\ud800"', '"\\u0000"', '"a\\u0000b"', '{"sid": "a", "sid": "b"}',
              "[" * 3000 + "]" * 3000, '{"a":' * 2000 + "1" + "}" * 2000, "true", "null", '""']
DELETE = Raw("")  # as a value: remove the field

NASTY_STRINGS = [
    "", ".", "..", "../x", "/etc/passwd", "C:\\Windows", "a\\b", "a\x00b", "a\nb", "\u202egnp.exe", " ", "\x7f",
    f"{ORG}", f"{ORG}/", f"{ORG}/../{OTHER}/x", f"{ORG}/./x", f"{ORG}//x", f"{ORG}/.restore/x", ".restore",
    f".restore/run/blobs/{ORG}/x", f"{ORG}/manifest.json", f"{ORG}/versions/../manifest.json",
    *OTHER_UIDS, *(f"{OTHER}/{uid}" for uid in OTHER_UIDS), *OTHER_RECORDS, *OTHER_VERSION_SIDS, OTHER,
    *OWN_UIDS, *(f"{ORG}/{uid}" for uid in OWN_UIDS), *OWN_VERSION_SIDS, f"{ORG}-rec-0",
    "x" * 65, "x" * 5000, "é" * 3000, "x" * 70_000,
    "2026-01-01T00:00:00+00:00", "2026-13-01T00:00:00", "0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00",
    "2026-01-01", "yesterday", "0" * 64, "F" * 64, "version", "file", "script", "1", "1e3",
]
scalars = st.one_of(
    st.none(), st.booleans(), st.just([]), st.just({}),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.sampled_from([-1, 0, 1, 2**31 - 1, 2**31, 2**32, 2**63 - 1, 2**63, 2**64, 10**30, -(2**63)]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
    st.sampled_from(NASTY_STRINGS),
    st.builds(Raw, st.sampled_from(RAW_TOKENS)),
)
hostile_values = st.recursive(
    scalars, lambda inner: st.one_of(st.lists(inner, min_size=1, max_size=3),
                                     st.dictionaries(st.text(max_size=6), inner, min_size=1, max_size=3)),
    max_leaves=6)


def to_json(value: Any, *, indent: int | None = None) -> str:
    """`json.dumps`, with every `Raw` put in as its text."""
    raws: dict[str, str] = {}

    def marked(item: Any) -> Any:
        if isinstance(item, Raw):
            token = f"@@raw-{uuid.uuid4().hex}@@"
            raws[f'"{token}"'] = item.text
            return token
        if isinstance(item, dict):
            return {key: marked(inner) for key, inner in item.items()}
        if isinstance(item, list):
            return [marked(inner) for inner in item]
        return item

    text = json.dumps(marked(value), indent=indent, sort_keys=indent is not None, ensure_ascii=False)
    for token, raw in raws.items():
        text = text.replace(token, raw)
    return text


@dataclass
class Item:
    name: str
    data: bytes
    deflated: bool
    is_manifest: bool = False  # its bytes are the manifest as it is when zipped


@dataclass
class Contents:
    """An archive taken apart: its entries in zip order and its manifest (any shape, once mutated)."""

    items: list[Item]
    manifest: dict[str, Any]
    layout: str = "lines"

    @classmethod
    def of(cls, archive: bytes) -> "Contents":
        with zipfile.ZipFile(io.BytesIO(archive)) as zf:
            items = [Item(info.filename, zf.read(info), info.compress_type == zipfile.ZIP_DEFLATED)
                     for info in zf.infolist()]
        manifest = next(item for item in items if item.name.endswith("/manifest.json"))
        items.remove(manifest)
        items.append(Item(manifest.name, b"", True, is_manifest=True))
        return cls(items, json.loads(manifest.data))

    def entries(self) -> list[Any]:
        entries = self.manifest.get("entries")
        return entries if isinstance(entries, list) else []

    def make_honest(self) -> None:
        """Sizes, SHA-256s, counts and total from the entries' bytes, as labvault would write them."""
        by_name = {item.name: item for item in reversed(self.items)}
        total = 0
        for entry in self.entries():
            if isinstance(entry, dict) and isinstance(entry.get("path"), str) and entry["path"] in by_name:
                data = by_name[entry["path"]].data
                entry["size"], entry["sha256"] = len(data), hashlib.sha256(data).hexdigest()
            if isinstance(entry, dict) and isinstance(entry.get("size"), int):
                total += entry["size"]
        kinds = [entry.get("kind") for entry in self.entries() if isinstance(entry, dict)]
        self.manifest["counts"] = {"versions": kinds.count("version"), "files": kinds.count("file")}
        self.manifest["total_bytes"] = total

    def manifest_bytes(self) -> bytes:
        entries = self.manifest.get("entries")
        if self.layout == "compact" or not isinstance(entries, list):
            return to_json(self.manifest).encode("utf-8", "surrogatepass")
        header = {key: value for key, value in self.manifest.items() if key != "entries"}
        opening = to_json(header, indent=2)[:-2]
        lines = ",\n".join(f"    {to_json(entry)}" for entry in entries)
        return f'{opening},\n  "entries": [\n{lines}\n  ]\n}}\n'.encode("utf-8", "surrogatepass")

    def zipped(self) -> bytes:
        out = io.BytesIO()
        with zipfile.ZipFile(out, "w") as zf, warnings.catch_warnings():
            warnings.simplefilter("ignore")  # zipfile warns about duplicate names, which we want
            for item in self.items:
                data = self.manifest_bytes() if item.is_manifest else item.data
                info = zipfile.ZipInfo(item.name, date_time=(2026, 5, 1, 12, 0, 0))
                info.compress_type = zipfile.ZIP_DEFLATED if item.deflated else zipfile.ZIP_STORED
                zf.writestr(info, data)
        return out.getvalue()


def _version_items(contents: Contents) -> list[Item]:
    return [item for item in contents.items if "/versions/" in item.name] or contents.items


@dataclass(frozen=True)
class Reorder:
    """The entries re-zipped in another order (the manifest may move too)."""

    keys: tuple[int, ...]

    def __call__(self, contents: Contents) -> None:
        order = sorted(range(len(contents.items)), key=lambda i: (self.keys[i % len(self.keys)], i))
        contents.items[:] = [contents.items[i] for i in order]


@dataclass(frozen=True)
class Rename:
    """An entry renamed in the zip and in the manifest alike."""

    index: int
    name: str

    def __call__(self, contents: Contents) -> None:
        item = contents.items[self.index % len(contents.items)]
        for entry in contents.entries():
            if isinstance(entry, dict) and entry.get("path") == item.name:
                entry["path"] = self.name
        item.name = self.name


@dataclass(frozen=True)
class MoveOrganization:
    """Every path, storage key and the header say another organization (OTHER: the target's)."""

    sid: str

    def __call__(self, contents: Contents) -> None:
        def moved(text: Any) -> Any:
            return self.sid + text[len(ORG):] if isinstance(text, str) and text.startswith(f"{ORG}/") else text

        for item in contents.items:
            item.name = moved(item.name)
        contents.manifest["organization"]["sid"] = self.sid
        for entry in contents.entries():
            for key in ("path", "storage_key"):
                if key in entry:
                    entry[key] = moved(entry[key])


@dataclass(frozen=True)
class RepeatEntry:
    """An entry twice: in the manifest only, in the zip only, or in both."""

    index: int
    where: str

    def __call__(self, contents: Contents) -> None:
        entries = contents.entries()
        if self.where in ("manifest", "both") and entries:
            entries.append(json.loads(json.dumps(entries[self.index % len(entries)])))
        if self.where in ("zip", "both"):
            item = contents.items[self.index % len(contents.items)]
            contents.items.insert(self.index % len(contents.items), Item(**vars(item)))


@dataclass(frozen=True)
class Drop:
    """An entry left out of the manifest or of the zip."""

    index: int
    where: str

    def __call__(self, contents: Contents) -> None:
        entries = contents.entries()
        if self.where == "manifest" and entries:
            del entries[self.index % len(entries)]
        elif self.where == "zip" and len(contents.items) > 1:
            del contents.items[self.index % len(contents.items)]


@dataclass(frozen=True)
class AddEntry:
    """An entry the manifest may or may not list."""

    name: str
    data: bytes
    listed: bool

    def __call__(self, contents: Contents) -> None:
        contents.items.insert(0, Item(self.name, self.data, False))
        if self.listed:
            contents.entries().append({"path": self.name, "kind": "file", "size": 0, "sha256": "0" * 64,
                                       "uid": "u-added", "original_name": "added"})


@dataclass(frozen=True)
class EditDocument:
    """A field of a version document set (or removed); the manifest then says its new size and hash."""

    index: int
    field: str
    value: Any

    def __call__(self, contents: Contents) -> None:
        item = (items := _version_items(contents))[self.index % len(items)]
        try:
            document = json.loads(item.data)
        except (ValueError, RecursionError):  # an earlier change made it unreadable
            return
        if not isinstance(document, dict):
            return
        if self.value == DELETE:
            document.pop(self.field, None)
        else:
            document[self.field] = self.value
        item.data = to_json(document).encode("utf-8", "surrogatepass")


@dataclass(frozen=True)
class ReplaceDocument:
    index: int
    data: bytes

    def __call__(self, contents: Contents) -> None:
        (items := _version_items(contents))[self.index % len(items)].data = self.data


@dataclass(frozen=True)
class Recompress:
    index: int
    deflated: bool

    def __call__(self, contents: Contents) -> None:
        contents.items[self.index % len(contents.items)].deflated = self.deflated


@dataclass(frozen=True)
class SetField:
    """A manifest field set to a hostile value (or removed), after sizes and hashes were made
    honest: in the header (`entry` None) or in one entry."""

    entry: int | None
    path: tuple[str, ...]
    value: Any

    def __call__(self, contents: Contents) -> None:
        entries = contents.entries()
        if self.entry is None:
            node: Any = contents.manifest
        elif entries:
            node = entries[self.entry % len(entries)]
        else:
            return
        for key in self.path[:-1]:
            if not isinstance(node, dict) or not isinstance(node.get(key), dict):
                return
            node = node[key]
        if not isinstance(node, dict):
            return
        if self.value == DELETE:
            node.pop(self.path[-1], None)
        else:
            node[self.path[-1]] = self.value


@dataclass(frozen=True)
class ReplaceEntry:
    """A whole manifest entry replaced by a hostile value."""

    index: int
    value: Any

    def __call__(self, contents: Contents) -> None:
        if entries := contents.entries():
            entries[self.index % len(entries)] = self.value


@dataclass(frozen=True)
class ShareIdentity:
    """One file entry takes another's uid, storage key or path: a double claim."""

    index: int
    other: int
    field: str

    def __call__(self, contents: Contents) -> None:
        files = [entry for entry in contents.entries() if isinstance(entry, dict) and entry.get("kind") == "file"]
        if len(files) >= 2:
            one, two = files[self.index % len(files)], files[self.other % len(files)]
            one[self.field] = two.get(self.field)


@dataclass(frozen=True)
class RenameVersion:
    """A version document given another sid, its path renamed to match: another organization's
    version, or one this archive already holds."""

    index: int
    sid: str

    def __call__(self, contents: Contents) -> None:
        item = (items := _version_items(contents))[self.index % len(items)]
        try:
            document = json.loads(item.data)
        except (ValueError, RecursionError):  # an earlier change made it unreadable
            return
        if isinstance(document, dict):
            document["sid"] = self.sid
            item.data = json.dumps(document).encode()
        Rename(contents.items.index(item), f"{item.name.rsplit('/', 1)[0]}/{self.sid}.json")(contents)


@dataclass(frozen=True)
class ClaimFile:
    """A file entry given another uid, and its storage key the default for that uid (or none)."""

    index: int
    uid: str
    keep_key: bool

    def __call__(self, contents: Contents) -> None:
        files = [entry for entry in contents.entries() if isinstance(entry, dict) and entry.get("kind") == "file"]
        if files:
            entry = files[self.index % len(files)]
            entry["uid"] = self.uid
            if self.keep_key:
                entry["storage_key"] = f"{ORG}/{self.uid}"
            else:
                entry.pop("storage_key", None)


HEADER_FIELDS = [("format_version",), ("organization",), ("organization", "sid"), ("organization", "name"),
                 ("backup",), ("backup", "sid"), ("backup", "name"), ("backup", "description"), ("created",),
                 ("counts",), ("counts", "versions"), ("counts", "files"), ("total_bytes",),
                 ("labvault_version",), ("requested_by",), ("entries",), ("unexpected",)]
ENTRY_FIELDS = ["path", "kind", "size", "sha256", "uid", "original_name", "record_sid", "content_type",
                "storage_key", "created_at", "unexpected"]
DOCUMENT_FIELDS = ["sid", "record_sid", "number", "created_at", "created_by", "data", "unexpected"]
names = st.one_of(st.sampled_from(NASTY_STRINGS[:30]).map(lambda s: s.replace("\x00", "")).filter(bool),
                  st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"),
                          min_size=1, max_size=20),
                  st.sampled_from([f"{ORG}/versions/{OTHER_VERSION_SIDS[0]}.json", f"{OTHER}/manifest.json",
                                   f"{ORG}/{OWN_UIDS[0]}_x", f"{OTHER}/{OTHER_UIDS[0]}_x"]))
values = st.one_of(hostile_values, st.just(DELETE))
indexes = st.integers(0, 30)
document_bytes = st.one_of(st.sampled_from([b"", b"{", b"null", b"[]", b"\xff\xfe", b"\xef\xbb\xbf{}",
                                            b"[" * 5000 + b"]" * 5000, b" " * 10]),
                           st.binary(max_size=64))
structural = st.one_of(
    st.builds(Reorder, st.lists(st.integers(0, 20), min_size=1, max_size=12).map(tuple)),
    st.builds(Rename, indexes, names),
    st.builds(MoveOrganization, st.sampled_from([OTHER, "org-new", "x" * 65, "."])),
    st.builds(RepeatEntry, indexes, st.sampled_from(["manifest", "zip", "both"])),
    st.builds(Drop, indexes, st.sampled_from(["manifest", "zip"])),
    st.builds(AddEntry, names, st.binary(max_size=16), st.booleans()),
    st.builds(EditDocument, indexes, st.sampled_from(DOCUMENT_FIELDS), values),
    st.builds(ReplaceDocument, indexes, document_bytes),
    st.builds(Recompress, indexes, st.booleans()),
)
IDENTITIES = [*OTHER_UIDS, *(f"{OTHER}/{uid}" for uid in OTHER_UIDS), *OTHER_RECORDS, *OTHER_VERSION_SIDS,
              *OWN_UIDS, *(f"{ORG}/{uid}" for uid in OWN_UIDS), *OWN_VERSION_SIDS, f"{ORG}-rec-0", f"{ORG}-rec-9",
              *(f"{ORG}/{uid}" for uid in OTHER_UIDS), f"{ORG}/new", f"{ORG}/a/b", f"{ORG}/.restore", "u-new"]
identities = st.sampled_from(IDENTITIES)
timestamps = st.sampled_from(["0001-01-01T00:00:00+14:00", "0001-01-01T00:00:00", "9999-12-31T23:59:59-14:00",
                              "9999-12-31T23:59:59.999999", "2026-02-30T00:00:00", "2026-01-01T24:00:00",
                              "1970-01-01T00:00:00Z", "2026-01-01T00:00:00+99:00", "2026-01-01", 0, 1e20])
# Changes that keep an archive well-formed and reach the restore's ownership and document checks.
deep_changes = st.one_of(
    st.builds(RenameVersion, indexes, identities.filter(lambda sid: "/" not in sid)),
    st.builds(EditDocument, indexes, st.sampled_from(["record_sid", "sid"]), identities),
    st.builds(EditDocument, indexes, st.just("number"),
              st.sampled_from([-1, 0, 2**31 - 1, 2**31, 2**63, 10**30, 1.5, True, "1"])),
    st.builds(EditDocument, indexes, st.just("created_at"), timestamps),
    st.builds(EditDocument, indexes, st.just("data"), hostile_values),
    st.builds(MoveOrganization, st.sampled_from([OTHER, "org-new"])),
)
deep_edits = st.one_of(
    st.builds(SetField, indexes, st.sampled_from(["uid", "storage_key", "record_sid"]).map(lambda name: (name,)),
              identities),
    st.builds(SetField, indexes, st.just(("created_at",)), timestamps),
    st.builds(ClaimFile, indexes, identities.filter(lambda uid: "/" not in uid), st.booleans()),
    st.builds(ShareIdentity, indexes, indexes, st.sampled_from(["uid", "storage_key"])),
)
manifest_edits = st.one_of(
    st.builds(SetField, st.none(), st.sampled_from(HEADER_FIELDS), values),
    st.builds(SetField, indexes, st.sampled_from(ENTRY_FIELDS).map(lambda name: (name,)), values),
    st.builds(ReplaceEntry, indexes, hostile_values),
    st.builds(ShareIdentity, indexes, indexes, st.sampled_from(["uid", "storage_key", "path"])),
)


@FUZZ
@given(changes=st.lists(st.one_of(structural, deep_changes, deep_changes), max_size=3),
       edits=st.lists(st.one_of(manifest_edits, deep_edits, deep_edits), max_size=3),
       layout=st.sampled_from(["lines", "compact"]), damage=st.lists(byte_mutations, max_size=1),
       kind=target_kinds, merge=merges)
def test_rezipped_archives_with_hostile_manifests_are_refused_or_restored_never_anything_else(
        fuzz: Fuzz, changes: list[Callable[[Contents], None]], edits: list[Callable[[Contents], None]],
        layout: str, damage: list[Callable[[bytes], bytes]], kind: str, merge: MergePolicy | None) -> None:
    contents = Contents.of(fuzz.archive)
    contents.layout = layout
    for change in changes:
        change(contents)
    contents.make_honest()
    for edit in edits:
        edit(contents)
    data = contents.zipped()
    for mutate in damage:
        data = mutate(data)
    check(fuzz, data, kind, merge)


# --- plain cases: the fuzzer's starting point, and what it found ---------------------------------

@pytest.mark.parametrize("kind", Targets.KINDS)
@pytest.mark.parametrize("merge", [None, MergePolicy.SKIP, MergePolicy.OVERWRITE])
def test_the_unmutated_archive_verifies_and_restores_unless_the_target_holds_it(
        fuzz: Fuzz, kind: str, merge: MergePolicy | None) -> None:
    """The fuzzer starts from an archive that is good, re-zipped or not, in targets that take it."""
    for data in (fuzz.archive, Contents.of(fuzz.archive).zipped()):
        assert verify_archive(io.BytesIO(data), label="base").ok
        target = fuzz.targets.fresh(kind)
        before = target_digest(target)
        with session_factory(target.url)() as session:
            if kind == "part of its own too" and merge is None:
                with pytest.raises(InvalidInputError, match="--merge skip"):
                    restore_archive(lambda: io.BytesIO(data), label="base", session=session,
                                    files_storage=target.files)
                assert target_digest(target) == before
                continue
            report = restore_archive(lambda: io.BytesIO(data), label="base", session=session,
                                     files_storage=target.files, merge=merge)
        assert target_digest(target) != before
        assert report.organization_sid == ORG


# What the fuzzer found: each was a traceback out of verify and restore, now one line.

@pytest.mark.parametrize("data", [b"PK\x05\x06", b"x" * 100 + b"PK\x05\x06" + bytes(10)])
def test_an_end_record_signature_too_near_the_end_is_no_end_record(data: bytes, tmp_path: Path) -> None:
    """Found as an archive truncated 4 bytes into its end record: `struct.error` escaped
    `directory_location`, which unpacked 22 bytes where fewer were left."""
    problem = "not a readable zip archive (truncated or corrupt): no end of central directory record"
    assert verify_archive(io.BytesIO(data), label="cut.zip").problems == [problem]
    target = Target(tmp_path)
    upgrade_schema(target.url)
    with session_factory(target.url)() as session, pytest.raises(InvalidInputError) as refused:
        restore_archive(lambda: io.BytesIO(data), label="cut.zip", session=session, files_storage=target.files)
    assert str(refused.value) == f"archive cut.zip failed verification: {problem}; nothing was restored"


@pytest.mark.parametrize("entry", [Raw('"\\ud800"'),
                                   {"path": f"{ORG}/x", "kind": "file", "uid": Raw('"\\ud800"')}])
def test_a_lone_surrogate_in_a_manifest_entry_is_malformed_json(fuzz: Fuzz, entry: Any) -> None:
    """Found as a manifest entry `"\\ud800"`: Python's JSON reads a lone surrogate into a str
    that cannot be encoded as UTF-8, and `UnicodeEncodeError` escaped the manifest reader."""
    contents = Contents.of(fuzz.archive)
    contents.entries()[0] = entry
    (problem,) = verify_archive(io.BytesIO(contents.zipped()), label="surrogate.zip").problems
    assert re.fullmatch(r"manifest entry (#1|'org-fz/x') is malformed: Invalid JSON: unexpected end of hex "
                        r"escape at line 1 column \d+", problem), problem
