"""A fuzzer over valid archives: flipped, truncated, spliced, duplicated, reordered, or with a
manifest field set to a hostile value. Whatever comes out, three things hold:

- only labvault's own errors escape verification and restore;
- reading costs bounded memory (peak of Python allocations per example, tracemalloc);
- a refused restore leaves the target's rows and bytes identical, compared by a hash of both.

CI runs LABVAULT_FUZZ_EXAMPLES examples (default 60); a longer run:
`LABVAULT_FUZZ_EXAMPLES=5000 .venv/bin/python -m pytest tests/labvault/test_archive_fuzz.py`.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import tempfile
import tracemalloc
import warnings
import zipfile
from datetime import datetime, timezone
from functools import cache
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import MetaData, select

from labvault.archive import ArchiveWriter
from labvault.database import session_factory, upgrade_schema
from labvault.errors import LabvaultError
from labvault.models import File, Organization, Record, Version
from labvault.restore import MergePolicy, restore_archive
from labvault.storage import FsspecStorage
from labvault.verify import verify_archive
from tests.factories import make_organization

ORG = "org-f"
EXAMPLES = int(os.environ.get("LABVAULT_FUZZ_EXAMPLES", "60"))
MEMORY_BUDGET = 64 * 1024 * 1024  # Python allocations while one example is read and restored
HOSTILE_VALUES = [None, -1, 2**63, 1e308, float("inf"), "", "x" * 70_000, [], {}, [[[[]]]], True,
                  "../../etc/passwd", "org-1/org-1-aaaa", "/abs", "org-f/\x00", "2026-13-45T00:00:00",
                  "0001-01-01T00:00:00+14:00", "org-1", "org-1-rec-0", "org-1-rec-0-v1", "ü" * 300]
FIELDS = ["path", "kind", "size", "sha256", "uid", "original_name", "record_sid", "storage_key",
          "created_at", "content_type"]
HEADER_FIELDS = ["format_version", "organization", "backup", "created", "counts", "total_bytes"]


@cache
def base_archive() -> bytes:
    """A small archive labvault wrote: versions (deflated) and files (stored), manifest last."""
    with tempfile.TemporaryDirectory() as folder:
        storage = FsspecStorage(folder)
        created = datetime(2026, 5, 1, tzinfo=timezone.utc)
        with ArchiveWriter(storage.open_write("a.zip"), key="a.zip", organization_sid=ORG, created=created,
                           manifest_header={"backup": {"sid": "bk-f"}, "organization": {"sid": ORG, "name": "F"},
                                            "created": created.isoformat()}) as writer:
            for number in range(4):
                writer.add_json(f"{ORG}/versions/v{number}.json", {
                    "sid": f"v{number}", "record_sid": f"r{number % 2}", "number": number + 1,
                    "created_at": created.isoformat(), "created_by": "a@f.example",
                    "data": {"n": number, "list": [1, 2, {"deep": "é"}]}})
            for number, size in enumerate((0, 10, 70_000)):
                data = bytes(range(256)) * (size // 256) + b"x" * (size % 256)
                writer.add_stream(f"{ORG}/u{number}_file {number}.bin", io.BytesIO(data), declared_size=size,
                                  uid=f"u{number}", original_name=f"file {number}.bin", record_sid="r0",
                                  content_type="application/octet-stream", storage_key=f"{ORG}/u{number}",
                                  created_at=created.isoformat())
            writer.seal()
        return (Path(folder) / "a.zip").read_bytes()


@cache
def target_template() -> Path:
    """A target that holds another organization, and part of the archive's (for the merges)."""
    folder = Path(tempfile.mkdtemp(prefix="labvault-fuzz-target-"))
    url = f"sqlite:///{folder / 'target.db'}"
    upgrade_schema(url)
    files = FsspecStorage(str(folder / "files"))
    with session_factory(url)() as session:
        make_organization(session, files, sid="org-1", file_names=["a.txt", "b.txt"], records=2)
        session.add(Organization(sid=ORG, name="F"))
        session.add(Record(sid="r0", organization_sid=ORG, name="r0"))
        session.flush()
        session.add(Version(sid="v0", record_sid="r0", organization_sid=ORG, number=1, data={"old": True},
                            created_at=datetime(2026, 1, 1, tzinfo=timezone.utc)))
        session.add(File(uid="u1", organization_sid=ORG, name="old", size=3, storage_key=f"{ORG}/u1",
                         created_at=datetime(2026, 1, 1, tzinfo=timezone.utc)))
        pending = files.open_write(f"{ORG}/u1")
        pending.write(b"old")
        pending.commit()
        session.commit()
    return folder


def digest(folder: Path) -> str:
    """Every row of every table and every byte under the files folder."""
    hashed = hashlib.sha256()
    with session_factory(f"sqlite:///{folder / 'target.db'}")() as session:
        tables = MetaData()
        tables.reflect(bind=session.connection())
        for name in sorted(tables.tables):
            for row in sorted(repr(tuple(r)) for r in session.execute(select(tables.tables[name]))):
                hashed.update(f"{name}:{row}\n".encode())
    for path in sorted((folder / "files").rglob("*")):
        if path.is_file():
            hashed.update(str(path.relative_to(folder)).encode() + b"\0" + path.read_bytes())
    return hashed.hexdigest()


def rezip(data: bytes, order: list[int] | None = None, manifest_edit=None) -> bytes:  # type: ignore[no-untyped-def]
    """The archive written again by zipfile: entries in `order`, the manifest changed by `manifest_edit`."""
    with zipfile.ZipFile(io.BytesIO(data)) as old:
        infos = old.infolist()
        contents = [(info, old.read(info)) for info in infos]
    if order is not None:
        contents = [contents[i % len(contents)] for i in order] or contents
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as new, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # duplicated names are one of the mutations
        for info, content in contents:
            if manifest_edit is not None and info.filename.endswith("/manifest.json"):
                content = json.dumps(manifest_edit(json.loads(content))).encode()
            new.writestr(info, content)
    return out.getvalue()


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    data = bytearray(base_archive())
    kind = draw(st.sampled_from(["flip", "truncate", "splice", "duplicate", "reorder", "field", "header"]))
    position = st.integers(0, len(data) - 1)
    if kind == "flip":
        for at, mask in draw(st.lists(st.tuples(position, st.integers(1, 255)), min_size=1, max_size=8)):
            data[at] ^= mask
        return bytes(data)
    if kind == "truncate":
        return bytes(data[:draw(position)])
    if kind in ("splice", "duplicate"):
        start, length, at = draw(position), draw(st.integers(1, 4096)), draw(position)
        piece = data[start:start + length]
        if kind == "splice":
            data[at:at + len(piece)] = piece
        else:
            data[at:at] = piece
        return bytes(data)
    if kind == "reorder":
        return rezip(bytes(data), order=draw(st.lists(st.integers(0, 20), min_size=1, max_size=12)))
    value = draw(st.sampled_from(HOSTILE_VALUES))
    if kind == "header":
        field = draw(st.sampled_from(HEADER_FIELDS))
        return rezip(bytes(data), manifest_edit=lambda m: {**m, field: value})
    index, field = draw(st.integers(0, 6)), draw(st.sampled_from(FIELDS))

    def edit(manifest: dict) -> dict:
        manifest["entries"][index][field] = value
        return manifest
    return rezip(bytes(data), manifest_edit=edit)


def test_the_base_archive_verifies_and_restores() -> None:
    """The fuzzer starts from a good archive: what it finds are the mutations' doing."""
    report = verify_archive(io.BytesIO(base_archive()), label="base")
    assert report.ok, report.problems
    with tempfile.TemporaryDirectory() as folder:
        url = f"sqlite:///{Path(folder) / 'empty.db'}"
        upgrade_schema(url)
        with session_factory(url)() as session:
            restored = restore_archive(lambda: io.BytesIO(base_archive()), label="base", session=session,
                                       files_storage=FsspecStorage(str(Path(folder) / "files")))
    assert (restored.versions, restored.files) == (4, 3)


@settings(max_examples=EXAMPLES, deadline=None, derandomize=not os.environ.get("LABVAULT_FUZZ_RANDOM"),
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(archive=mutated(), merge=st.sampled_from([None, MergePolicy.SKIP, MergePolicy.OVERWRITE]))
def test_mutated_archives_raise_only_labvault_errors_and_refusals_change_nothing(archive: bytes, merge) -> None:  # type: ignore[no-untyped-def]
    tracemalloc.start()
    try:
        report = verify_archive(io.BytesIO(archive), label="fuzzed")
        assert report.ok or report.problems
        with tempfile.TemporaryDirectory() as scratch:
            folder = Path(scratch) / "target"
            shutil.copytree(target_template(), folder)
            before = digest(folder)
            with session_factory(f"sqlite:///{folder / 'target.db'}")() as session:
                try:
                    restore_archive(lambda: io.BytesIO(archive), label="fuzzed", session=session,
                                    files_storage=FsspecStorage(str(folder / "files")), merge=merge)
                except LabvaultError as exc:
                    assert "\n" not in str(exc), "an error is one line"
                    assert digest(folder) == before, f"a refused restore changed the target: {exc}"
                else:
                    assert report.ok, f"restored an archive verification refused: {report.problems}"
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < MEMORY_BUDGET, f"one small archive took {peak} bytes of Python allocations"
