"""The storage contract, run over every backend we have: local folder, fsspec memory and S3 (a
real S3 protocol endpoint on loopback: moto_server and SeaweedFS)."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import pytest

from labvault.errors import InvalidInputError
from labvault.storage.folders import FsspecStorage
from labvault.storage.from_url import storage_for
from labvault.storage.s3 import MAX_PARTS, MiB, S3Storage, part_size_for
from labvault.storage.store import PARTIAL_SUFFIX
from tests.conftest import S3_SERVERS, new_bucket, use_s3_endpoint


@pytest.fixture(params=["local", "memory", *(f"s3-{server}" for server in S3_SERVERS)])
def storage(request: pytest.FixtureRequest, tmp_path: Path) -> FsspecStorage:
    if request.param == "local":
        return FsspecStorage(str(tmp_path / "store"))
    if request.param.startswith("s3-"):
        use_s3_endpoint(request, request.param.removeprefix("s3-"))
        return S3Storage(f"s3://{new_bucket()}/some/prefix", setting="test", part_size=5 * 1024 * 1024)
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
    assert storage.list() == ["org/a.zip"]


def test_an_aborted_write_leaves_nothing(storage: FsspecStorage) -> None:
    pending = storage.open_write("org/b.zip")
    pending.write(b"partial")
    pending.abort()
    assert storage.list() == []
    assert storage.list_partials() == []
    assert not storage.exists("org/b.zip")
    assert not storage.exists("org/b.zip" + PARTIAL_SUFFIX)


def test_a_move_replaces_the_target_and_a_missing_source_is_said(storage: FsspecStorage) -> None:
    """What a restore's promotion relies on: the staged object takes the key's place whole."""
    for key, data in (("org/u1", b"old bytes"), (".restore/run/blobs/org/u1", b"new bytes")):
        pending = storage.open_write(key)
        pending.write(data)
        pending.commit()
    storage.move(".restore/run/blobs/org/u1", "org/u1")
    with storage.open_read("org/u1") as source:
        assert source.read() == b"new bytes"
    assert storage.list() == ["org/u1"]
    with pytest.raises(FileNotFoundError):
        storage.move(".restore/run/blobs/org/u1", "org/u1")
    free = storage.free_bytes()
    assert free is None if not storage.url("x").startswith("/") else free > 0


def partial_keys(storage: FsspecStorage, seconds: float = 10) -> list[str]:
    """The keys of pending writes, once there are any: an S3 upload begins on its own thread."""
    deadline = time.monotonic() + seconds
    while not (keys := [p.key for p in storage.list_partials()]) and time.monotonic() < deadline:
        time.sleep(0.05)
    return keys


def test_a_write_larger_than_several_parts_arrives_whole(storage: FsspecStorage) -> None:
    data = bytes(range(256)) * (4 * 13 * 1024 + 7)  # about 13.6 MB: three 5 MiB parts on S3
    pending = storage.open_write("org/big.zip")
    for start in range(0, len(data), 1024 * 1024):
        pending.write(data[start:start + 1024 * 1024])
    if isinstance(storage, S3Storage):
        assert partial_keys(storage) == ["org/big.zip"]  # pending, not visible
    assert not storage.exists("org/big.zip")
    pending.commit()
    with storage.open_read("org/big.zip") as source:
        assert source.read() == data
    assert storage.list_partials() == []


def test_a_left_over_partial_is_listed_and_discarded(storage: FsspecStorage) -> None:
    pending = storage.open_write("org/dead.zip")
    pending.write(b"x" * (6 * 1024 * 1024))  # past one part: the upload has begun
    assert partial_keys(storage) == ["org/dead.zip"]
    [partial] = storage.list_partials()
    storage.discard_partial(partial)
    assert storage.list_partials() == []
    assert not storage.exists("org/dead.zip")
    pending.abort()  # the writer of a dead run is gone; this one must not linger either
    assert storage.list_partials() == [] and not storage.exists("org/dead.zip")


def test_reading_a_missing_key_raises_file_not_found(storage: FsspecStorage) -> None:
    with pytest.raises(FileNotFoundError):
        storage.open_read("org/missing")
    with pytest.raises(FileNotFoundError):
        storage.open_stream("org/missing")


def test_a_stream_read_gives_the_whole_object_in_chunks(storage: FsspecStorage) -> None:
    data = bytes(range(256)) * 12_000  # about 3 MB: several chunks of a copy
    pending = storage.open_write("org/blob")
    pending.write(data)
    pending.commit()
    chunks = []
    with storage.open_stream("org/blob") as source:
        while chunk := source.read(1024 * 1024):
            chunks.append(chunk)
    assert b"".join(chunks) == data and len(chunks) == 3


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
    with pytest.raises(InvalidInputError, match="not a plain relative path"):
        storage.open_stream(key)


def test_an_unknown_protocol_is_one_clear_error() -> None:
    with pytest.raises(InvalidInputError, match="LABVAULT_FILES_URL 'nosuch://x'"):
        storage_for("nosuch://x", setting="LABVAULT_FILES_URL")


def test_a_local_link_is_the_absolute_path(tmp_path: Path) -> None:
    storage = FsspecStorage(str(tmp_path / "store"))
    assert storage.url("org/a.zip") == str(tmp_path / "store" / "org" / "a.zip")


def _seconds_valid(link: str) -> float:
    import time
    from urllib.parse import parse_qs, urlsplit

    query = parse_qs(urlsplit(link).query)
    if "X-Amz-Expires" in query:  # SigV4
        return float(query["X-Amz-Expires"][0])
    return float(query["Expires"][0]) - time.time()  # SigV2: an absolute time


def test_an_s3_download_link_downloads_and_lives_at_most_seven_days(s3_bucket: str) -> None:
    from datetime import timedelta

    import httpx

    storage = S3Storage(f"s3://{s3_bucket}/backups", setting="test")
    pending = storage.open_write("org/a.zip")
    pending.write(b"the archive")
    pending.commit()
    assert httpx.get(storage.download_link("org/a.zip", timedelta(hours=1))).content == b"the archive"
    assert 3500 < _seconds_valid(storage.download_link("org/a.zip", timedelta(hours=1))) <= 3600
    week = 7 * 24 * 3600
    assert week - 60 < _seconds_valid(storage.download_link("org/a.zip", timedelta(days=30))) <= week
    assert storage.url("org/a.zip") == f"s3://{s3_bucket}/backups/org/a.zip"


def test_parts_grow_so_that_ten_thousand_hold_twice_the_estimate() -> None:
    minimum = 8 * MiB
    assert part_size_for(None, minimum) == minimum
    assert part_size_for(10**9, minimum) == minimum
    for expected in (100 * 10**9, 10**12, 5 * 10**12 + 1):
        size = part_size_for(expected, minimum)
        assert size % MiB == 0 and MAX_PARTS * size >= 2 * expected
        assert MAX_PARTS * (size - MiB) < 2 * expected  # no larger than it must be
    assert part_size_for(100 * 10**9, minimum) == 20 * MiB


def test_an_s3_upload_expected_to_be_large_uses_larger_parts(s3_bucket: str) -> None:
    import boto3

    storage = S3Storage(f"s3://{s3_bucket}/backups", setting="test", part_size=5 * MiB)
    data = bytes(range(256)) * (18 * 4096)  # 18 MiB: four 5 MiB parts, or three of 6 MiB
    for key, expected, parts in (("small.zip", None, 4), ("large.zip", MAX_PARTS * 3 * MiB, 3)):
        pending = storage.open_write(f"org/{key}", expected)  # 6 MiB parts hold twice `expected`
        for start in range(0, len(data), MiB):
            pending.write(data[start:start + MiB])
        pending.commit()
        with storage.open_stream(f"org/{key}") as source:
            assert source.read() == data
        etag = boto3.client("s3").head_object(Bucket=s3_bucket, Key=f"backups/org/{key}")["ETag"]
        assert etag.strip('"').endswith(f"-{parts}")  # a multipart ETag ends with its part count


def test_the_write_check_leaves_nothing_behind(storage: FsspecStorage) -> None:
    storage.check_writable()
    assert storage.list() == []
    assert storage.list_partials() == []


def test_the_write_check_of_a_new_folder_leaves_no_folder(tmp_path: Path) -> None:
    """A refused restore or backup must not leave the folders its pre-flight check made."""
    FsspecStorage(str(tmp_path / "new" / "store")).check_writable()
    assert list(tmp_path.iterdir()) == []


def test_the_write_check_reaches_s3_and_refuses_a_missing_bucket(s3_endpoint: str, s3_server: str) -> None:
    """Opening an upload sends nothing: the check must put an object for real."""
    store = S3Storage("s3://no-such-bucket-labvault/backups", setting="LABVAULT_BACKUPS_URL")
    if s3_server == "seaweedfs":  # weed mini makes a missing bucket on the first write; S3 refuses
        store.check_writable()
        assert store.fs.exists("no-such-bucket-labvault") and store.list() == []
        return
    with pytest.raises(InvalidInputError) as refused:
        store.check_writable()
    assert str(refused.value) == (
        "LABVAULT_BACKUPS_URL 's3://no-such-bucket-labvault/backups': cannot write there (The specified "
        "bucket does not exist); check the bucket, AWS_ENDPOINT_URL and the credentials")


def test_the_write_check_refuses_an_s3_endpoint_nobody_answers(
        s3_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.conftest import free_port

    endpoint = f"http://127.0.0.1:{free_port()}"
    monkeypatch.setenv("AWS_ENDPOINT_URL", endpoint)
    store = S3Storage("s3://bucket/backups", setting="LABVAULT_BACKUPS_URL")
    with pytest.raises(InvalidInputError) as refused:
        store.check_writable()
    assert str(refused.value) == (
        f"LABVAULT_BACKUPS_URL 's3://bucket/backups': cannot write there (Could not connect to the endpoint "
        f'URL: "{endpoint}/bucket/backups/.labvault-write-probe"); check the bucket, AWS_ENDPOINT_URL '
        "and the credentials")


def test_deleting_in_a_read_only_store_is_one_clear_error() -> None:
    store = storage_for("http://127.0.0.1:9/backups", setting="LABVAULT_BACKUPS_URL")
    with pytest.raises(InvalidInputError) as refused:
        store.delete("org-1/bk-1.zip")
    assert str(refused.value) == ("LABVAULT_BACKUPS_URL 'http://127.0.0.1:9/backups': cannot delete there "
                                  "(http:// stores are read-only)")


def test_asking_an_s3_endpoint_nobody_answers_is_one_clear_error(
        s3_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """What `backup verify SID` asks first; it was botocore's traceback."""
    from labvault.errors import TransientError
    from tests.conftest import free_port

    endpoint = f"http://127.0.0.1:{free_port()}"
    monkeypatch.setenv("AWS_ENDPOINT_URL", endpoint)
    store = S3Storage("s3://bucket/backups", setting="LABVAULT_BACKUPS_URL")
    with pytest.raises(TransientError) as failed:
        store.exists("org-1/bk-1.zip")
    assert str(failed.value) == ("LABVAULT_BACKUPS_URL 's3://bucket/backups': cannot reach it (Could not connect "
                                 f'to the endpoint URL: "{endpoint}/bucket/backups/org-1/bk-1.zip")')


def test_a_read_only_store_is_refused_by_the_write_check() -> None:
    store = storage_for("http://127.0.0.1:9/backups", setting="LABVAULT_BACKUPS_URL")
    with pytest.raises(InvalidInputError) as refused:
        store.check_writable()
    assert str(refused.value) == (
        "LABVAULT_BACKUPS_URL 'http://127.0.0.1:9/backups': cannot write there (http:// stores cannot be "
        "written); point it at a writable folder or bucket")


def test_a_new_s3_store_signs_with_the_keys_the_environment_has_now(s3_bucket: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """boto3's default session keeps the keys it first found for the life of the process: a test
    that ran the CLI with other keys made every later upload to SeaweedFS (which checks
    signatures; moto does not) fail. Each store's clients have a session of their own."""
    import os

    import boto3

    good = os.environ["AWS_ACCESS_KEY_ID"], os.environ["AWS_SECRET_ACCESS_KEY"]
    try:
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", "stale-key")
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "stale-secret")
        boto3.DEFAULT_SESSION = None
        boto3.client("s3")  # the default session now holds the stale keys
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", good[0])
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", good[1])
        store = S3Storage(f"s3://{s3_bucket}/now", setting="test")
        pending = store.open_write("org/a.zip")
        pending.write(b"signed with today's keys")
        pending.commit()
        store.check_writable()
        assert store.list() == ["org/a.zip"]
    finally:
        boto3.DEFAULT_SESSION = None
