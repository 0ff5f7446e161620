"""Archives read front to back by Java's `ZipInputStream`, as JVM tools and ingest pipelines read
zips: without the central directory, so every entry must say where it ends and size its data
descriptor as the reader will (issue 14 item 15, issue 18 item 1)."""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import subprocess
import zipfile
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import pytest
from sqlalchemy import select

from labvault.archive.safe_names import file_entry_name
from labvault.archive.writer import ArchiveWriter
from labvault.db.models import File
from labvault.demo import DEMO_ADMIN_EMAIL, DEMO_ORGANIZATION_SID, load_demo
from labvault.storage.folders import FsspecStorage
from labvault.zipstream.writer import ZipStreamWriter
from tests.labvault.test_backups import BackupRequest, run_backup
from tests.labvault.zipstream.test_writer import unzip_test

READER = Path(__file__).resolve().parents[2] / "java" / "ZipInputStreamCheck.java"
MiB = 1024 * 1024


@dataclass(frozen=True)
class ReadEntry:
    """One entry as ZipInputStream gave it."""

    name: str
    size: int
    crc: int
    sha256: str


@pytest.fixture(scope="module")
def java_reader(tmp_path_factory: pytest.TempPathFactory) -> Callable[..., list[ReadEntry]]:
    """Compiles the reader once; calling the result reads a zip's bytes from a file or writes them
    through a callback, and returns the entries (extracted to `folder` when given). With
    `zip_file`, the file is read with `ZipFile` (from its central directory) instead."""
    if not (shutil.which("javac") and shutil.which("java")):
        reason = "no JDK (javac and java) here; install default-jdk-headless to run the ZipInputStream checks"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{reason} (.ci/run installs it in CI)")
        pytest.skip(reason)
    classes = tmp_path_factory.mktemp("java")
    subprocess.run(["javac", "-d", str(classes), str(READER)], check=True, capture_output=True)

    def read(source: Path | Callable[[io.BufferedWriter], None], folder: Path | None = None, *,
             zip_file: bool = False) -> list[ReadEntry]:
        command = ["java", "-cp", str(classes), "ZipInputStreamCheck"] + ([str(folder)] if folder else [])
        if zip_file:
            assert isinstance(source, Path) and folder is None
            done = subprocess.run(command + ["--zipfile", str(source)], capture_output=True)
            stdout, stderr, code = done.stdout, done.stderr, done.returncode
        elif isinstance(source, Path):
            with source.open("rb") as stdin:
                done = subprocess.run(command, stdin=stdin, capture_output=True)
            stdout, stderr, code = done.stdout, done.stderr, done.returncode
        else:
            process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                       stderr=subprocess.PIPE)
            assert process.stdin is not None
            try:
                source(process.stdin)  # type: ignore[arg-type]
            except BrokenPipeError:
                pass  # the reader gave up: its stderr says why
            stdout, stderr = process.communicate()  # closes its stdin: the end of the zip
            code = process.returncode
        assert code == 0, f"java.util.zip refused the archive: {stderr.decode(errors='replace')}"
        entries = []
        for line in stdout.decode().splitlines():
            name, size, crc, sha256 = line.split(" ")
            entries.append(ReadEntry(bytes.fromhex(name).decode("utf-8"), int(size), int(crc), sha256))
        return entries

    return read


def expected(name: str, data: bytes) -> ReadEntry:
    return ReadEntry(name, len(data), zlib.crc32(data), hashlib.sha256(data).hexdigest())


def assert_extracted(path: Path, folder: Path, entries: list[ReadEntry],
                     sources: dict[str, bytes]) -> None:
    """Every entry ZipInputStream extracted has the bytes of its source (`sources`, by name)
    and, for the rest, the bytes Python's zipfile reads."""
    with zipfile.ZipFile(path) as zf:
        assert [entry.name for entry in entries] == zf.namelist()
        for index, entry in enumerate(entries):
            data = sources.get(entry.name, zf.read(entry.name))
            assert (folder / str(index)).read_bytes() == data, f"{entry.name} differs from its source"
            assert entry == expected(entry.name, data)


def test_the_demo_archive_reads_front_to_back(java_reader, sessions, files, backups_storage,  # type: ignore[no-untyped-def]
                                              tmp_path: Path) -> None:
    with sessions() as session:
        load_demo(session, files)
        rows = session.scalars(select(File).where(File.organization_sid == DEMO_ORGANIZATION_SID)).all()
        sources = {file_entry_name(DEMO_ORGANIZATION_SID, row.uid, row.name): files.open_read(row.storage_key).read()
                   for row in rows}
    request = BackupRequest(DEMO_ORGANIZATION_SID, "Java", "", DEMO_ADMIN_EMAIL)
    path = Path(backups_storage.url(f"{DEMO_ORGANIZATION_SID}/{run_backup(sessions, files, backups_storage, request)}.zip"))
    folder = tmp_path / "extracted"
    folder.mkdir()
    entries = java_reader(path, folder)
    assert len(entries) == 341 and len(sources) == 40
    assert set(sources) <= {entry.name for entry in entries}
    assert_extracted(path, folder, entries, sources)
    unzip_test(path)


def test_empty_stored_deflated_and_manifest_entries_read_front_to_back(java_reader, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """Sizes around deflate's 64 KiB stored block and the copy buffer, empty files, files whose
    size is not recorded (found by reading ahead); versions deflated; the manifest last."""
    sources = {f"org/u{index}_file": os.urandom(size) for index, size in
               enumerate([0, 1, 0xFFFF - 1, 0xFFFF, 0xFFFF + 1, MiB, 3 * MiB + 17])}
    storage = FsspecStorage(str(tmp_path / "store"))
    with ArchiveWriter(storage.open_write("org/bk.zip"), key="org/bk.zip", manifest_header={"backup": {"sid": "bk"}},
                       organization_sid="org", created=datetime(2026, 5, 17, tzinfo=timezone.utc)) as archive:
        archive.add_json("org/versions/v1.json", {"sid": "v1", "data": {"é": "x" * 10_000}})
        for name, data in sources.items():
            archive.add_stream(name, io.BytesIO(data), declared_size=len(data))
        archive.add_stream("org/u9_unknown", io.BytesIO(b"size not recorded" * 60_000), declared_size=None)
        archive.add_stream("org/u10_empty_unknown", io.BytesIO(b""), declared_size=None)
        archive.seal()
    path = Path(storage.url("org/bk.zip"))
    folder = tmp_path / "extracted"
    folder.mkdir()
    entries = java_reader(path, folder)
    assert entries[-1].name == "org/manifest.json"
    assert_extracted(path, folder, entries, sources)
    unzip_test(path)


def test_an_entry_over_4_gib_and_entries_past_4_gib_read_front_to_back(java_reader) -> None:  # type: ignore[no-untyped-def]
    """4 GiB + 1 MiB of zeros, piped straight into the reader (nothing on disk): that entry
    needs ZIP64 sizes, and the entries after it lie past 4 GiB, so only their central records
    need ZIP64 (their offsets); the reader never sees those."""
    huge_size = 4 * 1024 * MiB + MiB
    zeros = bytes(MiB)
    after = {"org/after": b"after the 4 GiB mark", "org/manifest.json": b'{"entries": []}\n' * 100}
    crc = 0

    def huge_chunks() -> Iterator[bytes]:
        nonlocal crc
        for _ in range(huge_size // MiB):
            crc = zlib.crc32(zeros, crc)
            yield zeros

    def write(output: io.BufferedWriter) -> None:
        writer = ZipStreamWriter(output, modified=datetime(2026, 5, 17))
        writer.write_stream("org/u1_huge", huge_chunks(), declared_size=huge_size)
        writer.write_stream("org/after", iter([after["org/after"]]), declared_size=len(after["org/after"]))
        writer.write_stream("org/manifest.json", iter([after["org/manifest.json"]]),
                            declared_size=len(after["org/manifest.json"]), level=6)
        assert writer.offset > 4 * 1024 * MiB
        writer.close()

    entries = java_reader(write)
    assert [entry.name for entry in entries] == ["org/u1_huge", "org/after", "org/manifest.json"]
    assert (entries[0].size, entries[0].crc) == (huge_size, crc)
    assert entries[1:] == [expected(name, data) for name, data in after.items()]
