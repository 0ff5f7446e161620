"""The one-pass check takes labvault's own archives and hands anything else to the full check."""

from __future__ import annotations

import io
import json
import zipfile
from datetime import datetime, timezone
from pathlib import Path

import pytest

from labvault.archive.rules import ArchiveLimits
from labvault.archive.scan import scan_archive
from labvault.archive.verify import ArchiveReader, verify_archive
from labvault.archive.writer import ArchiveWriter
from labvault.storage.folders import FsspecStorage

BIG = bytes(range(256)) * 12_000  # 3 MB: read in several chunks


@pytest.fixture
def archive(tmp_path: Path) -> Path:
    storage = FsspecStorage(str(tmp_path / "store"))
    with ArchiveWriter(storage.open_write("org/bk.zip"), key="org/bk.zip",
                       manifest_header={"backup": {"sid": "bk"}, "organization": {"sid": "org"},
                                        "created": "2026-05-01T00:00:00+00:00"},
                       organization_sid="org", created=datetime(2026, 5, 1, tzinfo=timezone.utc)) as writer:
        for number in range(50):
            writer.add_json(f"org/versions/v{number}.json", {"sid": f"v{number}", "data": {"n": number, "é": "ü"}})
        writer.add_stream("org/u1_Résumé final.pdf", io.BytesIO(BIG), declared_size=len(BIG), uid="u1", original_name="Résumé final.pdf")
        writer.add_stream("org/u2_empty", io.BytesIO(b""), declared_size=0, uid="u2", original_name="empty")
        writer.add_stream("org/u3_unknown", io.BytesIO(b"abc"), declared_size=None, uid="u3", original_name="unknown")
        writer.seal()
    return Path(storage.url("org/bk.zip"))


def scan(path: Path):  # type: ignore[no-untyped-def]
    with path.open("rb") as source:
        return scan_archive(source, label=str(path), limits=ArchiveLimits())


def full_check(path: Path):  # type: ignore[no-untyped-def]
    with path.open("rb") as source:
        reader = ArchiveReader(source, label=str(path))
        try:
            return reader.verify_contents()
        finally:
            reader.close()


def test_a_labvault_archive_is_checked_in_one_pass_with_the_full_checks_verdict(archive: Path) -> None:
    report = scan(archive)
    assert report is not None, "the one-pass check refused an archive labvault wrote"
    assert report.ok
    assert report == full_check(archive)
    assert (report.entries, report.versions, report.files) == (54, 50, 3)
    assert report.total_bytes == len(BIG) + 3 + sum(len(json.dumps(
        {"data": {"n": n, "é": "ü"}, "sid": f"v{n}"}, ensure_ascii=False, separators=(",", ":")).encode())
        for n in range(50))
    assert (report.organization_sid, report.backup_sid) == ("org", "bk")


def flip(path: Path, name: str, at: int) -> None:
    with zipfile.ZipFile(path) as zf:
        info = zf.getinfo(name)
    data = bytearray(path.read_bytes())
    data[info.header_offset + 30 + len(info.filename.encode()) + len(info.extra) + at] ^= 0x01
    path.write_bytes(bytes(data))


def rewritten(path: Path, order: slice = slice(None), manifest_edit=None) -> None:  # type: ignore[no-untyped-def]
    with zipfile.ZipFile(path) as zf:
        contents = [(info, zf.read(info)) for info in zf.infolist()]
    for info, _ in contents:  # copied bytes (deflate's stored blocks) stay uncompressed
        if info.compress_size >= info.file_size:
            info.compress_type = zipfile.ZIP_STORED
    body, manifest = contents[:-1], contents[-1]
    if manifest_edit:
        manifest = (manifest[0], manifest_edit(manifest[1].decode()).encode())
    with zipfile.ZipFile(path, "w") as zf:
        for info, data in body[order] + [manifest]:
            zf.writestr(info, data)


DAMAGE = {
    "a flipped bit in a stored file": lambda p: flip(p, "org/u1_Résumé final.pdf", 2_000_000),
    "a flipped bit in a deflated version": lambda p: flip(p, "org/versions/v7.json", 5),
    "a flipped bit in the manifest": lambda p: flip(p, "org/manifest.json", 40),
    "a truncated archive": lambda p: p.write_bytes(p.read_bytes()[:-300]),
    "a manifest lying about a hash": lambda p: rewritten(p, manifest_edit=lambda text: text.replace(
        '"path": "org/u3_unknown", "sha256": "', '"path": "org/u3_unknown", "sha256": "0', 1)),
    "a manifest missing an entry": lambda p: rewritten(p, manifest_edit=lambda text: "\n".join(
        line for line in text.splitlines() if "org/versions/v3.json" not in line)),
}


@pytest.mark.parametrize("case", list(DAMAGE))
def test_damage_is_handed_to_the_full_check_which_names_it(case: str, archive: Path) -> None:
    DAMAGE[case](archive)
    assert scan(archive) is None
    with archive.open("rb") as source:
        report = verify_archive(source, label="damaged")
    assert not report.ok and report.problems


def test_an_archive_in_another_order_is_not_wrong_just_checked_the_full_way(archive: Path) -> None:
    rewritten(archive, order=slice(None, None, -1))
    assert scan(archive) is None
    with archive.open("rb") as source:
        report = verify_archive(source, label="reordered")
    assert report.ok, report.problems
    assert (report.versions, report.files) == (50, 3)
