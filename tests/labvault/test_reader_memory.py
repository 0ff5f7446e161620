"""What reading a hostile archive costs: verify and restore of each, in a child process whose peak
RSS must stay under 300 MB and which must end within two minutes (issue 13, item 7)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zlib
from pathlib import Path

import pytest

from labvault.zip_format import (
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
from tests.zip_forge import ORG, ArchivePlan, Forged, described, forge

MiB = 1024 * 1024
RSS_LIMIT_MB = 300
ROOT = Path(__file__).parents[2]

CHILD = """
import json, resource, sys
from pathlib import Path
from labvault.database import session_factory, upgrade_schema
from labvault.errors import LabvaultError
from labvault.restore import restore_archive
from labvault.storage import FsspecStorage
from labvault.verify import verify_archive
source, work = sys.argv[1], Path(sys.argv[2])
with open(source, "rb") as stream:
    problems = verify_archive(stream, label="hostile").problems
url = f"sqlite:///{work / 'target.db'}"
upgrade_schema(url)
try:
    with session_factory(url)() as session:
        restore_archive(lambda: open(source, "rb"), label="hostile", session=session,
                        files_storage=FsspecStorage(str(work / "files")))
    refusal = None
except LabvaultError as exc:
    refusal = str(exc)
print(json.dumps({"problems": problems, "refusal": refusal,
                  "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def read_in_child(source: Path, work: Path) -> dict:
    work.mkdir(exist_ok=True)
    done = subprocess.run([sys.executable, "-c", CHILD, str(source), str(work)], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout)


def deflated_repeats(head: bytes, piece: bytes, repeat: int) -> tuple[bytes, int, int]:
    """`head` then `piece` repeated, as one deflate stream built without holding the whole:
    (compressed bytes, size, CRC)."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    parts, crc = [compressor.compress(head)], zlib.crc32(head)
    for _ in range(repeat):
        parts.append(compressor.compress(piece))
        crc = zlib.crc32(piece, crc)
    parts.append(compressor.flush())
    return b"".join(parts), len(head) + len(piece) * repeat, crc


def manifest_of_zeros(path: Path) -> str:
    """400 MB of manifest, `"entries": [0, 0, …` on one line, deflated to well under 1 MB."""
    body, size, crc = deflated_repeats(b'{"format_version": 1, "entries": [', b"0, " * (MiB // 3), 400)
    manifest = Forged(f"{ORG}/manifest.json", b"", method=DEFLATED, body=body, size=size, crc=crc)
    path.write_bytes(forge([Forged(f"{ORG}/u1_name.bin", b"hello"), manifest]))
    return "expands"


def one_mib_entries(path: Path) -> str:
    zeros = b"\0" * MiB
    compressed, _, _ = deflated_repeats(b"", zeros, 1)
    plan = ArchivePlan()
    for number in range(2048):
        name = f"{ORG}/u{number}_zeros"
        plan.items.append((Forged(name, zeros, method=DEFLATED, body=compressed), described(name, zeros)))
    path.write_bytes(plan.build())
    return "over 100 times its size: refused as a ZIP bomb"


def overlapping_entries(path: Path) -> str:
    """The overlapping-header bomb: one stored MiB in the archive, 2,200 directory records
    pointing at it, 2.2 GB declared; the manifest lists them all honestly."""
    kernel = bytes(range(256)) * 4096
    names = [f"{ORG}/u{n}_copy".encode() for n in range(2200)]
    manifest = json.dumps({
        "format_version": 1, "organization": {"sid": ORG}, "backup": {"sid": "b"},
        "created": "2026-01-01T00:00:00Z", "counts": {"versions": 0, "files": len(names)},
        "total_bytes": len(kernel) * len(names),
        "entries": [described(name.decode(), kernel) for name in names]}).encode()
    out, crc = bytearray(), zlib.crc32(kernel)
    out += LOCAL.pack(LOCAL_SIGNATURE, 20, FLAG_UTF8, STORED, 0, 0x21, crc, len(kernel), len(kernel),
                      len(names[0]), 0) + names[0] + kernel
    deflated, _, _ = deflated_repeats(b"", manifest, 1)
    manifest_name, manifest_offset = f"{ORG}/manifest.json".encode(), len(out)
    out += LOCAL.pack(LOCAL_SIGNATURE, 20, FLAG_UTF8, DEFLATED, 0, 0x21, zlib.crc32(manifest), len(deflated),
                      len(manifest), len(manifest_name), 0) + manifest_name + deflated
    records = [(name, STORED, crc, len(kernel), len(kernel), 0) for name in names]
    records.append((manifest_name, DEFLATED, zlib.crc32(manifest), len(deflated), len(manifest), manifest_offset))
    directory = bytearray()
    for name, method, record_crc, compressed, size, offset in records:
        directory += CENTRAL.pack(CENTRAL_SIGNATURE, 20, 20, FLAG_UTF8, method, 0, 0x21, record_crc,
                                  compressed, size, len(name), 0, 0, 0, 0, 0, offset) + name
    start = len(out)
    out += directory + END.pack(END_SIGNATURE, 0, 0, len(records), len(records), len(directory), start, 0)
    path.write_bytes(bytes(out))
    return "refused as a ZIP bomb"  # 2.2 GB from 1.2 MB; under the floor, the tiling rule refuses it


def long_manifest_line(path: Path) -> str:
    huge = b'{"entries": ["' + os.urandom(3 * MiB).hex().encode() + b'"]}'
    path.write_bytes(forge([Forged(f"{ORG}/u1_name.bin", b"hello"),
                            Forged(f"{ORG}/manifest.json", huge, method=DEFLATED)]))
    return "manifest has a line longer than 65536 bytes"


CASES = {
    "a manifest of 400 MB of zeros on one line": manifest_of_zeros,
    "2,048 deflated entries of 1 MiB": one_mib_entries,
    "2,200 entries overlapping one stored MiB": overlapping_entries,
    "a manifest line of 6 MB": long_manifest_line,
}


@pytest.mark.parametrize("case", list(CASES))
def test_a_hostile_archive_is_refused_in_bounded_memory(case: str, tmp_path: Path) -> None:
    source = tmp_path / "hostile.zip"
    expected = CASES[case](source)
    result = read_in_child(source, tmp_path / "work")
    assert any(expected in problem for problem in result["problems"]), result["problems"]
    assert result["refusal"] and expected in result["refusal"], result["refusal"]
    assert result["rss_mb"] < RSS_LIMIT_MB, f"{case}: peak RSS {result['rss_mb']:.0f} MB"
    print(f"{case}: peak RSS {result['rss_mb']:.0f} MB")


def test_dev_zero_is_refused_in_bounded_memory(tmp_path: Path) -> None:
    result = read_in_child(Path("/dev/zero"), tmp_path / "work")
    assert result["problems"] == ["not a readable zip archive (truncated or corrupt): "
                                  "no end of central directory record"]
    assert result["refusal"] == ("archive hostile failed verification: not a readable zip archive "
                                 "(truncated or corrupt): no end of central directory record; nothing was restored")
    assert result["rss_mb"] < RSS_LIMIT_MB
