"""Peak RSS of verify and of restore on hostile archives stays under 300 MB (issue 13).

Each archive is built here (no binary fixtures) and read in a child process of its own, which
runs `verify_archive`, then `restore_archive` into an empty SQLite target, and reports its peak
RSS for each (`VmHWM`, reset between the two: Linux ≥ 4.0) and what each said. The peaks include
the child's Python and labvault imports (about 70 MB). A child that does not finish within
`TIMEOUT` seconds fails the test: reading must stop, not merely stay small.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import shutil
import subprocess
import sys
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from labvault.db.engine import upgrade_schema
from labvault.zipstream.format import (
    CENTRAL,
    CENTRAL_SIGNATURE,
    DEFLATED,
    END,
    END_SIGNATURE,
    FLAG_UTF8,
    LOCAL,
    LOCAL_SIGNATURE,
    STORED,
)
from tests.zip_forge import ORG, Forged, described, forge, manifest

MiB = 1024 * 1024
PEAK_LIMIT = 300 * 1000 * 1000
TIMEOUT = 120
REPOSITORY = Path(__file__).parents[3]
MANIFEST = f"{ORG}/manifest.json"
# Under the per-entry ratio (200) for the 1.6 MB manifests below, and under the 256 MiB past
# which the whole archive's ratio counts: a size every directory rule lets through.
PLAUSIBLE_SIZE = 250_000_000

CHILD = r"""
import json, re, sys
from pathlib import Path

def status(field):
    text = Path("/proc/self/status").read_text()
    return int(re.search(rf"^{field}:\s+(\d+) kB$", text, re.MULTILINE)[1]) * 1024

from labvault.db.engine import session_factory
from labvault.errors import InvalidInputError
from labvault.restore import restore_archive
from labvault.storage.folders import FsspecStorage
from labvault.archive.verify import verify_archive

path, url, files = sys.argv[1:]
result = {"imported_rss": status("VmRSS")}
Path("/proc/self/clear_refs").write_text("5")  # the peak from here on
with open(path, "rb") as source:
    result["problems"] = verify_archive(source, label=path).problems
result["verify_peak"] = status("VmHWM")
Path("/proc/self/clear_refs").write_text("5")
try:
    with session_factory(url)() as session:
        restore_archive(lambda: open(path, "rb"), label=path, session=session,
                        files_storage=FsspecStorage(files))
    result["restore_error"] = None
except InvalidInputError as exc:
    result["restore_error"] = str(exc)
result["restore_peak"] = status("VmHWM")
print(json.dumps(result))
"""


@dataclass
class Measured:
    problems: list[str]
    restore_error: str | None
    imported_rss: int
    verify_peak: int
    restore_peak: int


@pytest.fixture(scope="module")
def empty_target(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated SQLite database, copied for each child (migrating costs a second)."""
    folder = tmp_path_factory.mktemp("empty-target")
    upgrade_schema(f"sqlite:///{folder / 'target.db'}")
    return folder / "target.db"


def measure(name: str, path: str, empty_target: Path, work: Path) -> Measured:
    """Verify, then restore, `path` in a child process; its peaks and what each said. Run with
    `-s` to see the peaks."""
    database = work / "target.db"
    shutil.copy(empty_target, database)
    try:
        child = subprocess.run(
            [sys.executable, "-c", CHILD, path, f"sqlite:///{database}", str(work / "files")],
            cwd=REPOSITORY, capture_output=True, text=True, timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        pytest.fail(f"{name}: verify and restore did not finish within {TIMEOUT} s")
    assert child.returncode == 0, child.stderr[-3000:]  # a traceback: an error that is not labvault's
    measured = Measured(**json.loads(child.stdout.splitlines()[-1]))
    print(f"\n{name}: peak RSS verify {measured.verify_peak / 1e6:.0f} MB, restore "
          f"{measured.restore_peak / 1e6:.0f} MB (after imports {measured.imported_rss / 1e6:.0f} MB)")
    return measured


# --- building the archives without holding what they expand to ------------------------------------

def repeated_deflate(piece: bytes, times: int, *, head: bytes = b"", tail: bytes = b"") -> tuple[bytes, int]:
    """A raw deflate stream of `head + piece * times + tail`, and its length once inflated.

    After a full flush the compressor refers to nothing before it, so `piece` compresses to
    the same self-contained blocks every time: the stream is those blocks repeated, made in
    milliseconds, where compressing 1.6 GB would take seconds and hold it."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    start = compressor.compress(head) + compressor.flush(zlib.Z_FULL_FLUSH)
    block = compressor.compress(piece) + compressor.flush(zlib.Z_FULL_FLUSH)
    end = compressor.compress(tail) + compressor.flush()
    return start + block * times + end, len(head) + len(piece) * times + len(tail)


def manifest_bomb(head: bytes, piece: bytes, tail: bytes, *, declared: int | None = None) -> bytes:
    """An archive whose only entry is a 1.6 GB manifest deflated to 1.6 MB, its size declared
    as `declared` (its true size by default). Its CRC is not computed (1.6 GB of it would cost
    seconds): every reader refuses these before it could compare one."""
    body, size = repeated_deflate(piece, 1600, head=head, tail=tail)
    return forge([Forged(MANIFEST, b"", method=DEFLATED, size=size if declared is None else declared,
                         crc=0, body=body)])


ZEROS_LINE = b"0, " * 349_525  # 1 MiB less a byte
_HEADER = json.dumps(manifest([]), indent=2).encode()
HEADER_LINES = _HEADER[:_HEADER.index(b'"entries"')] + b'"entries": [\n'  # as labvault lays it out


def zeros_in_one_line(declared: int | None) -> bytes:
    return manifest_bomb(b'{"format_version": 1, "entries": [', ZEROS_LINE, b"0]}", declared=declared)


def zeros_one_per_line() -> bytes:
    return manifest_bomb(HEADER_LINES, b"    0,\n" * 149_796, b"    0\n  ]\n}\n", declared=PLAUSIBLE_SIZE)


def blank_lines() -> bytes:
    """Blank lines in the list of entries: a megabyte of them is a million turns of the line
    reader's loop, so they count against the budget of what is not an entry."""
    return manifest_bomb(HEADER_LINES, b"\n" * MiB, b"  ]\n}\n", declared=PLAUSIBLE_SIZE)


def one_mib_entries() -> bytes:
    """2,048 deflated entries of exactly 1 MiB of zeros (each at the per-entry ratio's floor),
    2 GiB in all, with an honest manifest."""
    zeros = b"\0" * MiB
    body, _ = repeated_deflate(zeros, 1)
    crc, sha256 = zlib.crc32(zeros), hashlib.sha256(zeros).hexdigest()
    entries, lines = [], []
    for number in range(2048):
        path = f"{ORG}/u{number}_zeros.bin"
        entries.append(Forged(path, b"", method=DEFLATED, size=MiB, crc=crc, body=body))
        lines.append({**described(path, b""), "size": MiB, "sha256": sha256})
    text = json.dumps(manifest(lines)).encode()
    return forge(entries + [Forged(MANIFEST, text, method=DEFLATED)])


def overlapping_headers(entries: int, kernel_bytes: int) -> bytes:
    """The overlapping-local-header bomb with stored entries (after David Fifield's "A better
    zip bomb"): local headers one after another, then one kernel of zeros. Entry i's stored
    data is every later local header plus the kernel, so each entry holds all the entries
    after it and is declared at about the kernel's size. A manifest follows, listing them with
    their sizes (its SHA-256s are placeholders: honest ones would cost 2 GB of hashing)."""
    names = [f"{ORG}/u{number}_kernel.bin".encode() for number in range(entries)]
    offsets = list(itertools.accumulate((LOCAL.size + len(name) for name in names), initial=0))
    kernel_end = offsets[-1] + kernel_bytes
    sizes = [kernel_end - offset - LOCAL.size - len(name) for offset, name in zip(offsets, names)]
    text = json.dumps(manifest([{**described(name.decode(), b""), "size": size, "sha256": "0" * 64}
                                for name, size in zip(names, sizes)])).encode()
    body, _ = repeated_deflate(text, 1)
    records = [(name, STORED, 0, size, size, offset) for name, size, offset in zip(names, sizes, offsets)]
    records.append((MANIFEST.encode(), DEFLATED, zlib.crc32(text), len(body), len(text), kernel_end))
    out = bytearray()
    for name, method, crc, compressed, size, _ in records:
        out += LOCAL.pack(LOCAL_SIGNATURE, 20, FLAG_UTF8, method, 0, 0x21, crc, compressed, size, len(name), 0)
        out += name
        if method == DEFLATED:
            out += body
        elif name == names[-1]:
            out += bytes(kernel_bytes)
    directory = bytearray()
    for name, method, crc, compressed, size, offset in records:
        directory += CENTRAL.pack(CENTRAL_SIGNATURE, 20, 20, FLAG_UTF8, method, 0, 0x21, crc, compressed, size,
                                  len(name), 0, 0, 0, 0, 0, offset) + name
    start = len(out)
    return bytes(out + directory + END.pack(END_SIGNATURE, 0, 0, len(records), len(records), len(directory),
                                            start, 0))


def declared_sizes(data: bytes) -> list[tuple[int, int]]:
    """Each directory record's (size, compressed size), read here with `struct` rather than by
    the reader under test."""
    *_, count, _, position, _ = END.unpack_from(data, len(data) - END.size)
    sizes = []
    for _ in range(count):
        fields = CENTRAL.unpack_from(data, position)
        sizes.append((fields[9], fields[8]))
        position += CENTRAL.size + fields[10] + fields[11] + fields[12]
    return sizes


def total(data: bytes) -> int:
    return sum(size for size, _ in declared_sizes(data))


# --- the cases ------------------------------------------------------------------------------------

def bomb(size: int, declared: int) -> str:
    return (f"archive of {size} bytes would expand to {declared} bytes, over 100 times its size: "
            "refused as a ZIP bomb")


def line_too_long() -> list[str]:
    return ["manifest has a line longer than 65536 bytes; labvault writes one entry per line"]


@dataclass(frozen=True)
class Case:
    build: Callable[[], bytes]
    problems: Callable[[bytes], list[str]]  # what verification must say, given the archive


CASES = {
    "a manifest of 1.6 GB of zeros in one line, declared at its size": Case(
        lambda: zeros_in_one_line(None),
        lambda data: [f"entry {MANIFEST!r} expands {total(data) // declared_sizes(data)[0][1]}-fold: refused "
                      "as a ZIP bomb", bomb(len(data), total(data))]),
    "the same manifest declared at 250 MB": Case(
        lambda: zeros_in_one_line(PLAUSIBLE_SIZE), lambda data: line_too_long()),
    "a manifest listing 0, 0, 0, ... one per line, declared at 250 MB": Case(
        zeros_one_per_line,
        lambda data: ["manifest entry #1 is malformed: Input should be an object"]),
    "a manifest of 1.6 GB of blank lines, declared at 250 MB": Case(
        blank_lines,
        lambda data: ["manifest holds more than 1048576 bytes outside its entry lines; labvault writes "
                      "its header, then one entry per line"]),
    "2,048 deflated entries of 1 MiB of zeros": Case(
        one_mib_entries, lambda data: [bomb(len(data), total(data))]),
    "overlapping local headers declaring 2.1 GB": Case(
        lambda: overlapping_headers(256, 8 * MiB), lambda data: [bomb(len(data), total(data))]),
    "overlapping local headers within the expansion limits": Case(
        lambda: overlapping_headers(100, MiB),
        lambda data: [f"entry '{ORG}/u1_kernel.bin' overlaps the entry before it or leaves a gap: entries "
                      "must tile the archive"]),
    "a manifest whose one line is 6 MiB": Case(
        lambda: forge([Forged(MANIFEST, json.dumps(manifest([], deep=[os.urandom(3 * MiB).hex()])).encode(),
                              method=DEFLATED)]),
        lambda data: line_too_long()),
}


@pytest.mark.parametrize("case", list(CASES))
def test_verify_and_restore_of_a_hostile_archive_stay_under_300_mb(
        case: str, empty_target: Path, tmp_path: Path) -> None:
    data = CASES[case].build()
    path = tmp_path / "hostile.zip"
    path.write_bytes(data)
    expected = CASES[case].problems(data)
    measured = measure(case, str(path), empty_target, tmp_path)
    assert measured.problems == expected
    assert measured.restore_error == (f"archive {path} failed verification: {'; '.join(expected)}; "
                                      "nothing was restored")
    assert measured.verify_peak < PEAK_LIMIT, f"verify peaked at {measured.verify_peak / 1e6:.0f} MB"
    assert measured.restore_peak < PEAK_LIMIT, f"restore peaked at {measured.restore_peak / 1e6:.0f} MB"


def test_dev_zero_is_refused_at_once_in_little_memory(empty_target: Path, tmp_path: Path) -> None:
    """/dev/zero reads forever; its size reads as 0, so it has no end record to find."""
    measured = measure("/dev/zero", "/dev/zero", empty_target, tmp_path)
    problem = "not a readable zip archive (truncated or corrupt): no end of central directory record"
    assert measured.problems == [problem]
    assert measured.restore_error == f"archive /dev/zero failed verification: {problem}; nothing was restored"
    assert measured.verify_peak < PEAK_LIMIT and measured.restore_peak < PEAK_LIMIT
