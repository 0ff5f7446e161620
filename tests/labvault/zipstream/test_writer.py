"""The streaming zip writer, read back by Python's zipfile and by Info-ZIP's unzip."""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import zipfile
from datetime import datetime, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from labvault.zipstream.format import DEFLATED
from labvault.zipstream.writer import ZipStreamWriter

MODIFIED = datetime(2026, 5, 17, 8, 30, 44)


def unzip_test(path: Path) -> str:
    """Info-ZIP's own integrity test: CRCs, sizes and the central directory against the data."""
    assert shutil.which("unzip"), "Info-ZIP unzip is required (apt-get install unzip)"
    done = subprocess.run(["unzip", "-tq", str(path)], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def write_zip(path: Path, build) -> ZipStreamWriter:  # type: ignore[no-untyped-def]
    with path.open("wb") as output:
        writer = ZipStreamWriter(output, modified=MODIFIED)
        build(writer)
        writer.close()
    assert writer.offset == path.stat().st_size
    return writer


def test_entries_of_every_kind_read_back_identically(tmp_path: Path) -> None:
    big = bytes(range(256)) * 20_000
    path = tmp_path / "a.zip"

    def build(writer: ZipStreamWriter) -> None:
        writer.write_whole("org/versions/v1.json", b'{"a":"' + b"x" * 5000 + b'"}', method=DEFLATED, level=1)
        writer.write_whole("org/plain.txt", b"stored whole")
        writer.write_stream("org/u1_Résumé – final.pdf", iter([big[:7], big[7:]]), declared_size=len(big))
        writer.write_stream("org/u2_big", iter([big]), declared_size=None)
        writer.write_stream("org/u3_empty", iter([]), declared_size=0)
        writer.write_stream("org/log.txt", iter([b"line\n"] * 10_000), declared_size=50_000, level=6)

    write_zip(path, build)
    with zipfile.ZipFile(path) as zf:
        assert zf.testzip() is None
        assert zf.namelist() == ["org/versions/v1.json", "org/plain.txt", "org/u1_Résumé – final.pdf",
                                 "org/u2_big", "org/u3_empty", "org/log.txt"]
        assert zf.read("org/u1_Résumé – final.pdf") == big == zf.read("org/u2_big")
        assert zf.read("org/u3_empty") == b""
        assert zf.read("org/log.txt") == b"line\n" * 10_000
        assert zf.getinfo("org/log.txt").compress_size < 1000
        json_entry = zf.getinfo("org/versions/v1.json")
        assert json_entry.compress_type == zipfile.ZIP_DEFLATED
        assert json_entry.compress_size < json_entry.file_size // 10
        assert json_entry.date_time == (2026, 5, 17, 8, 30, 44)
        copied = zf.getinfo("org/u2_big")  # not compressed: deflate's stored blocks, 5 bytes per 64 KiB
        assert copied.compress_size == copied.file_size + 5 * (copied.file_size // 0xFFFF + 1)
        assert zf.getinfo("org/u2_big").external_attr >> 16 == 0o100644
    unzip_test(path)
    listing = subprocess.run(["unzip", "-Z1", str(path)], capture_output=True, text=True).stdout
    assert "org/u1_Résumé – final.pdf" in listing.splitlines()


def test_uncompressed_entries_are_framed_the_same_however_their_bytes_are_chunked(tmp_path: Path) -> None:
    """Stored blocks are full 64 KiB whatever the chunks, so the size (and the ZIP64 choice made
    from it before the data) is exact: around a block's edge, in chunks of 1 and 1000 bytes."""
    path = tmp_path / "chunks.zip"
    sources = {f"org/u{size}_{step}": bytes(range(256)) * (size // 256) + b"x" * (size % 256)
               for size in (0, 0xFFFF - 1, 0xFFFF, 0xFFFF + 1, 3 * 0xFFFF + 7) for step in (1, 1000)}

    def build(writer: ZipStreamWriter) -> None:
        for name, data in sources.items():
            step = int(name.rsplit("_", 1)[1])
            writer.write_stream(name, (data[i:i + step] for i in range(0, len(data), step)),
                                declared_size=len(data))

    write_zip(path, build)
    with zipfile.ZipFile(path) as zf:
        for name, data in sources.items():
            info = zf.getinfo(name)
            assert zf.read(info) == data
            assert (info.compress_type, info.compress_size) == (zipfile.ZIP_DEFLATED,
                                                                len(data) + 5 * (len(data) // 0xFFFF + 1))
    unzip_test(path)


def test_more_than_65535_entries_get_zip64_end_records(tmp_path: Path) -> None:
    path = tmp_path / "many.zip"

    def build(writer: ZipStreamWriter) -> None:
        for number in range(70_000):
            writer.write_whole(f"org/versions/v{number}.json", b"{}")

    write_zip(path, build)
    with zipfile.ZipFile(path) as zf:
        assert len(zf.infolist()) == 70_000
        assert zf.read("org/versions/v69999.json") == b"{}"
    assert b"PK\x06\x06" in path.read_bytes()[-200:], "no ZIP64 end of central directory record"
    unzip_test(path)


def test_offsets_past_4_gib_are_recorded_in_zip64_fields(tmp_path: Path) -> None:
    """Only the counters matter to the format, so a writer that skips over 4 GiB of output
    (a sparse file) shows where the second entry's header lands without writing 4 GiB."""
    path = tmp_path / "far.zip"
    with path.open("wb") as output:
        writer = ZipStreamWriter(output, modified=MODIFIED)
        writer.write_stream("org/u1_huge", iter([b"a"]), declared_size=1)
        output.seek(5 * 1024**3 - 1, io.SEEK_CUR)
        output.write(b"\0")
        writer.offset += 5 * 1024**3  # the skipped bytes stand for a huge entry's data
        writer.write_whole("org/after", b"after")
        writer.close()
    with zipfile.ZipFile(path) as zf:
        info = zf.getinfo("org/after")
        assert info.header_offset > 5 * 1024**3
        assert zf.read(info) == b"after"


def test_a_name_written_twice_is_refused_and_a_hash_collision_is_not(tmp_path: Path) -> None:
    path = tmp_path / "d.zip"

    class AlwaysCollides:
        def add(self, name: str) -> bool:
            return False  # every hash "seen before": only the real names can decide

    def build(writer: ZipStreamWriter) -> None:
        writer.write_whole("org/a", b"1")
        with pytest.raises(ValueError, match="'org/a' written twice"):
            writer.write_whole("org/a", b"2")
        writer._names = AlwaysCollides()  # type: ignore[assignment]
        writer.write_whole("org/b", b"3")
        writer.write_stream("org/c", iter([b"4"]), declared_size=1)
        with pytest.raises(ValueError, match="'org/b' written twice"):
            writer.write_stream("org/b", iter([b"5"]), declared_size=1)
        writer.write_whole("org/d", b"6")

    write_zip(path, build)
    with zipfile.ZipFile(path) as zf:
        assert [(i.filename, zf.read(i)) for i in zf.infolist()] == [
            ("org/a", b"1"), ("org/b", b"3"), ("org/c", b"4"), ("org/d", b"6")]
    unzip_test(path)


def test_many_distinct_names_are_all_accepted(tmp_path: Path) -> None:
    """The name table grows many times over; no distinct name may be taken for a duplicate."""
    with (tmp_path / "n.zip").open("wb") as output:
        writer = ZipStreamWriter(output, modified=MODIFIED)
        for number in range(200_000):
            writer.write_whole(f"n{number}", b"")
        with pytest.raises(ValueError, match="written twice"):
            writer.write_whole("n123456", b"")
        writer.abandon()


def test_each_entry_carries_its_own_time_in_utc(tmp_path: Path) -> None:
    """Per-entry times: the DOS fields hold UTC clock time (what zipfile reports, having no
    time zone to go by) and the extended timestamp the exact UTC second, which Info-ZIP shows in
    the reader's own zone and sets on the extracted file. An entry without a time gets the
    archive's; times zip cannot say are clamped in the DOS fields and have no extended stamp."""
    summer = datetime(2026, 7, 1, 8, 30, 45, tzinfo=timezone.utc)
    winter = datetime(2025, 12, 24, 23, 59, 59)  # naive: UTC, as SQLite returns it
    zurich = datetime(2026, 3, 2, 9, 0, 1, tzinfo=ZoneInfo("Europe/Zurich"))  # 08:00:01 UTC
    path = tmp_path / "times.zip"

    def build(writer: ZipStreamWriter) -> None:
        writer.write_whole("summer.json", b"{}", method=DEFLATED, modified=summer)
        writer.write_stream("winter.bin", iter([b"w"]), declared_size=1, modified=winter)
        writer.write_stream("zurich.bin", iter([b"z"]), declared_size=1, modified=zurich)
        writer.write_whole("archive.txt", b"a")
        writer.write_whole("old.txt", b"o", modified=datetime(1960, 5, 1, tzinfo=timezone.utc))

    write_zip(path, build)
    with zipfile.ZipFile(path) as zf:
        assert [info.date_time for info in zf.infolist()] == [
            (2026, 7, 1, 8, 30, 44), (2025, 12, 24, 23, 59, 58), (2026, 3, 2, 8, 0, 0),
            (2026, 5, 17, 8, 30, 44), (1980, 1, 1, 0, 0, 0)]
    listing = subprocess.run(["zipinfo", "-T", "-l", str(path)], capture_output=True, text=True,
                             env={**os.environ, "TZ": "Europe/Zurich"}, check=True).stdout
    assert [line.split()[-2:] for line in listing.splitlines()[2:-1]] == [
        ["20260701.103045", "summer.json"], ["20251225.005959", "winter.bin"],
        ["20260302.090001", "zurich.bin"], ["20260517.103044", "archive.txt"],
        ["19800101.000000", "old.txt"]]  # no extended stamp: the DOS fields as they are
    folder = tmp_path / "out"
    subprocess.run(["unzip", "-q", str(path), "-d", str(folder)], check=True)
    assert {name: int((folder / name).stat().st_mtime) for name in ("summer.json", "winter.bin", "zurich.bin")} == {
        "summer.json": int(summer.timestamp()), "winter.bin": int(winter.replace(tzinfo=timezone.utc).timestamp()),
        "zurich.bin": int(zurich.timestamp())}
