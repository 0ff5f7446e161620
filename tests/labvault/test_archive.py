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

from labvault.archive import ArchiveWriter
from labvault.storage import FsspecStorage

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
        assert zf.getinfo("org/u1_big.bin").compress_type == zipfile.ZIP_STORED
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


def test_a_declared_size_over_the_zip32_limit_uses_zip64_headers(storage: FsspecStorage) -> None:
    with writer(storage) as archive:
        archive.add_stream("org/u1_big", io.BytesIO(b"abc"), declared_size=5 * 1024**3)
        archive.seal()
    path = Path(storage.url("org/bk.zip"))
    with zipfile.ZipFile(path) as zf:
        assert zf.read("org/u1_big") == b"abc"
        offset = zf.getinfo("org/u1_big").header_offset
    raw = path.read_bytes()
    name_length, extra_length = struct.unpack("<HH", raw[offset + 26:offset + 30])
    extra = raw[offset + 30 + name_length:offset + 30 + name_length + extra_length]
    assert extra[:2] == b"\x01\x00", "the local header has no ZIP64 extra field"


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
