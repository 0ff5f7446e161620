"""The streaming archive writer, read back with zipfile and checked byte by byte."""

from __future__ import annotations

import hashlib
import io
import json
import struct
import zipfile
from datetime import datetime, timezone
from pathlib import Path

import pytest

from labvault.archive.writer import ArchiveWriter
from labvault.storage.folders import FsspecStorage

CREATED = datetime(2026, 5, 17, 8, 30, tzinfo=timezone.utc)


def writer(storage: FsspecStorage, key: str = "org/bk.zip") -> ArchiveWriter:
    return ArchiveWriter(storage.open_write(key), key=key, manifest_header={"backup": {"sid": "bk"}},
                         organization_sid="org", created=CREATED)


@pytest.fixture
def storage(tmp_path: Path) -> FsspecStorage:
    return FsspecStorage(str(tmp_path))


def test_sealed_archive_holds_entries_and_a_manifest_that_matches(storage: FsspecStorage) -> None:
    big = bytes(range(256)) * 9000  # larger than the copy buffer: several chunks
    with writer(storage) as archive:
        archive.add_json("org/versions/v1.json", {"sid": "v1", "data": {"é": [1, 2]}})
        archive.add_stream("org/u1_big.bin", io.BytesIO(big), declared_size=len(big), uid="u1")
        archive.add_stream("org/u2_empty", io.BytesIO(b""), declared_size=None, uid="u2")
        sealed = archive.seal()

    path = Path(storage.url("org/bk.zip"))
    assert sealed.size == path.stat().st_size
    assert (sealed.versions, sealed.files) == (1, 2)
    with zipfile.ZipFile(path) as zf:
        assert zf.testzip() is None
        assert zf.namelist() == ["org/versions/v1.json", "org/u1_big.bin", "org/u2_empty",
                                 "org/manifest.json"]
        assert zf.read("org/u1_big.bin") == big
        assert json.loads(zf.read("org/versions/v1.json")) == {"sid": "v1", "data": {"é": [1, 2]}}
        copied = zf.getinfo("org/u1_big.bin")  # deflate's stored blocks: copied, 5 bytes per 64 KiB
        assert copied.compress_size == copied.file_size + 5 * (copied.file_size // 0xFFFF + 1)
        assert zf.getinfo("org/versions/v1.json").compress_type == zipfile.ZIP_DEFLATED
        assert zf.getinfo("org/u1_big.bin").date_time == (2026, 5, 17, 8, 30, 0)
        manifest = json.loads(zf.read("org/manifest.json"))
        for entry in manifest["entries"]:
            data = zf.read(entry["path"])
            assert entry["size"] == len(data)
            assert entry["sha256"] == hashlib.sha256(data).hexdigest()
    assert manifest["backup"] == {"sid": "bk"}
    assert manifest["counts"] == {"versions": 1, "files": 2}
    assert manifest["total_bytes"] == sealed.total_bytes == sum(e["size"] for e in manifest["entries"])
    assert [e["uid"] for e in manifest["entries"] if e["kind"] == "file"] == ["u1", "u2"]
    assert storage.list() == ["org/bk.zip"]


def test_an_exception_inside_the_block_leaves_no_archive_and_no_partial(storage: FsspecStorage) -> None:
    with pytest.raises(RuntimeError, match="boom"):
        with writer(storage) as archive:
            archive.add_json("org/versions/v1.json", {"sid": "v1"})
            raise RuntimeError("boom")
    assert storage.list() == []


def test_a_source_failing_mid_file_leaves_nothing(storage: FsspecStorage) -> None:
    class Failing(io.RawIOBase):
        def readinto(self, buffer):  # type: ignore[no-untyped-def]
            raise OSError("disk on fire")

    with pytest.raises(OSError, match="disk on fire"):
        with writer(storage) as archive:
            archive.add_stream("org/u1_x", Failing(), declared_size=10)
    assert storage.list() == []


def test_the_same_path_twice_is_refused(storage: FsspecStorage) -> None:
    with writer(storage) as archive:
        archive.add_json("org/versions/v1.json", {})
        with pytest.raises(ValueError, match="written twice"):
            archive.add_json("org/versions/v1.json", {})
        with pytest.raises(ValueError, match="written twice"):
            archive.add_json("org/manifest.json", {})
        archive.abort()
    assert storage.list() == []


def test_a_file_whose_bytes_contradict_its_declared_zip64_size_fails_and_leaves_nothing(
        storage: FsspecStorage) -> None:
    """Declared at 5 GiB, the entry's header says ZIP64; 3 real bytes would make that header lie."""
    from labvault.errors import PermanentError

    with pytest.raises(PermanentError) as failure:
        with writer(storage) as archive:
            archive.add_stream("org/u1_big", io.BytesIO(b"abc"), declared_size=5 * 1024**3)
    assert str(failure.value) == ("file 'org/u1_big' holds 3 bytes but its row declares 5368709120, which "
                                  "decides the archive's ZIP64 headers; correct the file's size and retry "
                                  "the backup")
    assert storage.list() == []


def extra_tags(extra: bytes) -> list[int]:
    """The tags of an extra field's records, in order."""
    tags, position = [], 0
    while position + 4 <= len(extra):
        tag, length = struct.unpack_from("<HH", extra, position)
        tags.append(tag)
        position += 4 + length
    assert position == len(extra), f"extra field {extra!r} does not end with a whole record"
    return tags


def local_headers(path: Path) -> dict[str, tuple[int, int, bytes]]:
    """Each entry's local header as a streaming reader meets it: (flags, method, extra field)."""
    raw = path.read_bytes()
    headers = {}
    with zipfile.ZipFile(path) as zf:
        for info in zf.infolist():
            flags, method = struct.unpack("<HH", raw[info.header_offset + 6:info.header_offset + 10])
            name_length, extra_length = struct.unpack("<HH", raw[info.header_offset + 26:info.header_offset + 30])
            start = info.header_offset + 30 + name_length
            headers[info.filename] = (flags, method, raw[start:start + extra_length])
    return headers


def test_streaming_readers_can_find_where_every_entry_ends(storage: FsspecStorage) -> None:
    """No stored entry has a data descriptor, and entries whose sizes fit 32 bits, the manifest
    and a file declared between 2 and 4 GiB included, carry no ZIP64 field in either header (only
    the extended timestamp): Java's ZipInputStream and Node's unzipper refuse a local ZIP64 field
    the central record lacks (issue 18 item 1)."""
    with writer(storage) as archive:
        archive.add_json("org/versions/v1.json", {"sid": "v1"})
        archive.add_stream("org/u1_x", io.BytesIO(b"x" * 3_000_000), declared_size=3_000_000, uid="u1")
        archive.add_stream("org/u2_empty", io.BytesIO(b""), declared_size=0, uid="u2")
        archive.add_stream("org/u3_3gib", io.BytesIO(b"abc"), declared_size=3 * 1024**3, uid="u3")
        archive.seal()
    path = Path(storage.url("org/bk.zip"))
    headers = local_headers(path)
    assert set(headers) == {"org/versions/v1.json", "org/u1_x", "org/u2_empty", "org/u3_3gib", "org/manifest.json"}
    with zipfile.ZipFile(path) as zf:
        for name, (flags, method, extra) in headers.items():
            assert not (method == zipfile.ZIP_STORED and flags & 0x08), f"{name} is stored with a data descriptor"
            assert extra_tags(extra) == [0x5455], f"{name} has a local extra field {extra!r}"
            assert zf.getinfo(name).extra == extra, f"{name}: the central record's extra field differs"
        assert zf.read("org/u1_x") == b"x" * 3_000_000


def test_manifest_lines_are_uniform_json_whatever_the_entry_kind(storage: FsspecStorage) -> None:
    """Version lines are assembled by hand for speed; they must be the text json.dumps gives."""
    with writer(storage) as archive:
        archive.add_json('org/versions/v"é\\1.json', {"sid": "v1"})
        archive.add_json("org/versions/v2.json", {"sid": "v2", "data": None})
        archive.add_stream("org/u1_x", io.BytesIO(b"x"), declared_size=1, uid="u1")
        archive.seal()
    with zipfile.ZipFile(storage.url("org/bk.zip")) as zf:
        text = zf.read("org/manifest.json").decode("utf-8")
    lines = [line.strip().rstrip(",") for line in text.splitlines() if line.startswith("    {")]
    assert len(lines) == 3
    for line in lines:
        assert line == json.dumps(json.loads(line), ensure_ascii=False, sort_keys=True)
    assert json.loads(lines[0])["path"] == 'org/versions/v"é\\1.json'


def test_a_version_a_restore_would_refuse_is_not_written(storage: FsspecStorage) -> None:
    """Over 4 MiB of JSON a version is refused by restore; the backup says so and leaves nothing,
    rather than making an archive that cannot be restored."""
    from labvault.errors import PermanentError

    with pytest.raises(PermanentError, match=r"version 'v1' is \d+ bytes of JSON, over the 4194304 a "
                                             "restore accepts; shrink it before backing up"):
        with writer(storage) as archive:
            archive.add_json("org/versions/v1.json", {"sid": "v1", "data": "x" * (4 * 1024 * 1024)})
    assert storage.list() == []
