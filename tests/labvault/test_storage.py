"""The storage contract, run over every backend we have (local folder, fsspec memory)."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from labvault.errors import InvalidInputError
from labvault.storage import PARTIAL_SUFFIX, FsspecStorage, storage_for


@pytest.fixture(params=["local", "memory"])
def storage(request: pytest.FixtureRequest, tmp_path: Path) -> FsspecStorage:
    if request.param == "local":
        return FsspecStorage(str(tmp_path / "store"))
    return FsspecStorage(f"memory://labvault-test-{uuid.uuid4().hex}")


def test_a_pending_write_is_invisible_until_committed(storage: FsspecStorage) -> None:
    pending = storage.open_write("org/a.zip")
    pending.write(b"hello ")
    pending.write(memoryview(b"world"))
    assert not storage.exists("org/a.zip")
    pending.commit()
    assert storage.exists("org/a.zip")
    with storage.open_read("org/a.zip") as source:
        assert source.read() == b"hello world"
    assert storage.size("org/a.zip") == 11
    assert storage.list() == ["org/a.zip"]


def test_an_aborted_write_leaves_nothing(storage: FsspecStorage) -> None:
    pending = storage.open_write("org/b.zip")
    pending.write(b"partial")
    pending.abort()
    assert storage.list() == []
    assert not storage.exists("org/b.zip")
    assert not storage.exists("org/b.zip" + PARTIAL_SUFFIX)


def test_reading_a_missing_key_raises_file_not_found(storage: FsspecStorage) -> None:
    with pytest.raises(FileNotFoundError):
        storage.open_read("org/missing")


def test_delete_removes_and_is_idempotent(storage: FsspecStorage) -> None:
    pending = storage.open_write("org/c")
    pending.write(b"x")
    pending.commit()
    storage.delete("org/c")
    storage.delete("org/c")
    assert not storage.exists("org/c")


@pytest.mark.parametrize("key", ["", "/etc/passwd", "../outside", "org/../../x", "org//x", "a\\b"])
def test_keys_that_leave_the_root_are_refused(storage: FsspecStorage, key: str) -> None:
    with pytest.raises(InvalidInputError, match="not a plain relative path"):
        storage.open_read(key)


def test_an_unknown_protocol_is_one_clear_error() -> None:
    with pytest.raises(InvalidInputError, match="LABVAULT_FILES_URL 'nosuch://x'"):
        storage_for("nosuch://x", setting="LABVAULT_FILES_URL")


def test_a_local_link_is_the_absolute_path(tmp_path: Path) -> None:
    storage = FsspecStorage(str(tmp_path / "store"))
    assert storage.url("org/a.zip") == str(tmp_path / "store" / "org" / "a.zip")
