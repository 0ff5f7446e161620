"""The archives open the same everywhere (issue 18 item 4): the demo's (awkward names), one of
more than 65,535 entries and one over 4 GiB, each read by Info-ZIP `unzip`, 7-Zip, `bsdtar`
streaming from standard input, Python's `zipfile`, and Java's `ZipFile` and `ZipInputStream`.
Every reader must extract every entry, byte-exact against the manifest's SHA-256 (the
manifest itself against what `zipfile` reads), and nothing more.

Each archive is backed up once per session and read by all six (`big_archives`, shared with
test_large_numbers)."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from labvault.archive.safe_names import MAX_ENTRY_PATH
from tests.big_archives import MAKERS
from tests.labvault.archive.test_streaming_readers import java_reader  # noqa: F401 (a fixture)
from tests.labvault.archive.test_windows_names import assert_windows_safe

HASH_BYTES = 1024 * 1024
ARCHIVES = list(MAKERS)


def tool(*names: str) -> str:
    """The first of `names` on the PATH; missing, a failure in CI and a skip elsewhere."""
    for name in names:
        if found := shutil.which(name):
            return found
    reason = f"{' or '.join(names)} is not installed (.ci/run installs it)"
    if os.environ.get("CI") == "true":
        pytest.fail(reason)
    pytest.skip(reason)


def sha256_of(chunks: Iterator[bytes]) -> str:
    digest = hashlib.sha256()
    for chunk in chunks:
        digest.update(chunk)
    return digest.hexdigest()


def file_chunks(path: Path) -> Iterator[bytes]:
    with path.open("rb") as source:
        while chunk := source.read(HASH_BYTES):
            yield chunk


def expected_digests(path: Path) -> dict[str, str]:
    """Every entry's SHA-256 as the manifest says it; the manifest's own as zipfile reads it."""
    with zipfile.ZipFile(path) as zf:
        [manifest_name] = [name for name in zf.namelist() if name.endswith("/manifest.json")]
        manifest = zf.read(manifest_name)
    digests = {entry["path"]: entry["sha256"] for entry in json.loads(manifest)["entries"]}
    return {**digests, manifest_name: hashlib.sha256(manifest).hexdigest()}


def extracted_digests(folder: Path) -> dict[str, str]:
    """Every file a tool extracted under `folder`, by its path inside, with its SHA-256."""
    return {path.relative_to(folder).as_posix(): sha256_of(file_chunks(path))
            for path in sorted(folder.rglob("*")) if path.is_file()}


def run(command: list[str], **options: object) -> None:
    done = subprocess.run(command, capture_output=True, **options)  # type: ignore[call-overload]
    assert done.returncode == 0, f"{command[0]} failed: {done.stdout[-2000:]!r} {done.stderr[-2000:]!r}"


def piped_digests(command: list[str], path: Path, *, stdin: bool = False) -> dict[str, str]:
    """What a tool writes to standard output, every entry's bytes one after another in the
    archive's order, cut by the directory's sizes: the fast way through 70,001 entries or 4 GiB
    (extracting them to disk took minutes). Nothing may follow the last entry."""
    with zipfile.ZipFile(path) as zf:
        layout = [(info.filename, info.file_size) for info in zf.infolist()]
    with path.open("rb") as source:
        process = subprocess.Popen(command, stdin=source if stdin else subprocess.DEVNULL,
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        assert process.stdout is not None
        digests = {}
        for name, size in layout:
            digest = hashlib.sha256()
            while size:
                chunk = process.stdout.read(min(size, HASH_BYTES))
                assert chunk, f"{command[0]} wrote less than the archive holds, stopping in {name!r}"
                digest.update(chunk)
                size -= len(chunk)
            digests[name] = digest.hexdigest()
        assert process.stdout.read() == b"", f"{command[0]} wrote more than the archive holds"
        _, stderr = process.communicate()
    assert process.returncode == 0, f"{command[0]} failed: {stderr[-2000:]!r}"
    return digests


def info_zip(path: Path, folder: Path | None) -> list[dict[str, str]]:
    """`unzip -t`, then `unzip -p`, which checks every CRC too: Info-ZIP inflates at about
    130 MB/s, so the archive over 4 GiB gets the one pass only."""
    unzip = tool("unzip")
    if path.stat().st_size < 4 * 1024**3:
        run([unzip, "-tq", str(path)])
    if folder:
        run([unzip, "-q", str(path), "-d", str(folder)])
    return [piped_digests([unzip, "-p", str(path)], path)] + ([extracted_digests(folder)] if folder else [])


def seven_zip(path: Path, folder: Path | None) -> list[dict[str, str]]:
    seven = tool("7zz", "7z")
    run([seven, "t", str(path)])
    if folder:
        run([seven, "x", "-y", f"-o{folder}", str(path)])
    return [piped_digests([seven, "x", "-so", str(path)], path)] + ([extracted_digests(folder)] if folder else [])


def bsdtar_streaming(path: Path, folder: Path | None) -> list[dict[str, str]]:
    """libarchive reading the zip front to back from a pipe, as `curl … | bsdtar -xf -` does."""
    bsdtar = tool("bsdtar")
    if folder:
        with path.open("rb") as stdin:
            run([bsdtar, "-xf", "-", "-C", str(folder)], stdin=stdin)
    return [piped_digests([bsdtar, "-xOf", "-"], path, stdin=True)] + ([extracted_digests(folder)] if folder else [])


def python_zipfile(path: Path, _folder: Path | None) -> list[dict[str, str]]:
    with zipfile.ZipFile(path) as zf:
        def chunks(info: zipfile.ZipInfo) -> Iterator[bytes]:
            with zf.open(info) as entry:
                while chunk := entry.read(HASH_BYTES):
                    yield chunk
        return [{info.filename: sha256_of(chunks(info)) for info in zf.infolist()}]


READERS = {"unzip": info_zip, "7-Zip": seven_zip, "bsdtar": bsdtar_streaming, "zipfile": python_zipfile}


@pytest.mark.parametrize("kind", ARCHIVES)
@pytest.mark.parametrize("reader", READERS)
def test_the_tools_extract_every_entry_exactly(big_archives, reader: str, kind: str, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """Each tool's test mode passes and its output to a pipe matches the manifest; the demo's
    awkward names are also extracted to disk, where each file must be where its name says."""
    path = big_archives(kind)
    folder = tmp_path / "out" if kind == "demo" else None
    if folder:
        folder.mkdir()
    for digests in READERS[reader](path, folder):
        assert digests == expected_digests(path)


@pytest.mark.parametrize("kind", ARCHIVES)
@pytest.mark.parametrize("zip_file", [True, False], ids=["ZipFile", "ZipInputStream"])
def test_java_reads_every_entry_exactly(big_archives, java_reader, zip_file: bool, kind: str) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    path = big_archives(kind)
    read = {entry.name: entry.sha256 for entry in java_reader(path, zip_file=zip_file)}
    assert read == expected_digests(path)


def test_the_demo_archive_extracts_on_windows(big_archives) -> None:  # type: ignore[no-untyped-def]
    """The demo's awkward names (a 360-character one among them) within Windows' limits."""
    with zipfile.ZipFile(big_archives("demo")) as zf:
        names = zf.namelist()
    assert MAX_ENTRY_PATH - 5 <= max(len(name) for name in names) <= MAX_ENTRY_PATH  # the long name, shortened
    assert_windows_safe(names)
