"""The resuming stream under verify and restore, against a small server that misbehaves."""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Iterator

import pytest

from labvault.errors import InvalidInputError, TransientError
from labvault.storage import range_reader
from labvault.storage.range_openers import HttpRangeOpener
from labvault.storage.range_reader import MAX_RESUMES, RangeReader
from tests.range_server import RangeServer

DATA = os.urandom(5 * 1024 * 1024 + 17)


@pytest.fixture
def server() -> Iterator[RangeServer]:
    serving = RangeServer(DATA)
    yield serving
    serving.close()


def reader(server: RangeServer, max_bytes: int = len(DATA)) -> RangeReader:
    return RangeReader(HttpRangeOpener(f"{server.url}/a.zip", "the link"), max_bytes=max_bytes)


def test_dropped_connections_resume_from_the_last_byte_read_and_the_bytes_are_exact(server: RangeServer) -> None:
    server.drops = 2
    with reader(server) as stream:
        assert stream.read() == DATA
    first, *resumed = server.ranges[1:]  # after the one-byte GET that learns the size
    assert first == f"bytes=0-{len(DATA) - 1}"
    cut = len(DATA) // 2  # the first GET was cut after half its body, the resume after half the rest
    assert resumed[0].startswith("bytes=") and int(resumed[0][6:].split("-")[0]) <= cut
    assert int(resumed[0][6:].split("-")[0]) > 0 and len(resumed) == 2


def test_seeks_read_the_end_then_stream_from_the_start_in_one_request(server: RangeServer) -> None:
    with reader(server) as stream:
        stream.seek(-100, os.SEEK_END)
        assert stream.read(100) == DATA[-100:]
        stream.seek(0)
        assert stream.read(10) == DATA[:10]
        stream.seek(1000, os.SEEK_CUR)  # a short skip reads on through the same GET
        assert stream.read() == DATA[1010:]
    assert server.ranges == ["bytes=0-0", f"bytes={len(DATA) - 100}-{len(DATA) - 1}",
                             f"bytes=0-{len(DATA) - 1}"]


def test_a_body_that_never_ends_is_read_to_the_declared_size_only(server: RangeServer) -> None:
    server.endless = True
    with reader(server) as stream:
        assert len(stream.read()) == len(DATA)
        assert stream.read(1) == b""


def test_a_connection_that_keeps_dropping_ends_in_one_error_after_bounded_resumes(server: RangeServer) -> None:
    server.drops = -1
    with reader(server) as stream, pytest.raises(TransientError) as raised:
        stream.read()
    assert str(raised.value) == (f"cannot read archive 'the link': the connection broke "
                                 f"({MAX_RESUMES} resumes tried)")
    assert len(server.ranges) == 2 + MAX_RESUMES


def test_an_archive_over_the_limit_is_refused_before_its_bytes_are_read(server: RangeServer) -> None:
    with pytest.raises(InvalidInputError) as raised:
        reader(server, max_bytes=1000)
    assert str(raised.value) == (f"archive 'the link' is {len(DATA)} bytes, over the limit of 1000 "
                                 "(LABVAULT_ARCHIVE_MAX_BYTES)")
    assert server.ranges == ["bytes=0-0"]


def test_an_object_replaced_while_read_is_refused_not_mixed(server: RangeServer) -> None:
    with reader(server) as stream:  # its size and ETag are read when it opens
        server.etag = '"v2"'  # then the object is overwritten: the next GET's If-Match fails
        with pytest.raises(InvalidInputError) as raised:
            stream.read()
    assert str(raised.value) == "archive 'the link' changed while it was read; read it again"


def read_threads() -> list[threading.Thread]:
    return [thread for thread in threading.enumerate() if thread.name == "range-read" and thread.is_alive()]


def read_end_then_start(stream: RangeReader) -> bytes:
    """What verify does: the archive's end first, then every byte from the first on."""
    stream.seek(-100, os.SEEK_END)
    stream.read(100)
    stream.seek(0)
    return stream.read()


def test_a_server_that_ignores_if_match_and_serves_a_new_version_is_refused_not_spliced(server: RangeServer) -> None:
    server.ignore_if_match = True
    with reader(server) as stream:
        stream.seek(-100, os.SEEK_END)
        assert stream.read(100) == DATA[-100:]
        server.data, server.etag = bytes(len(DATA)), '"v2"'  # replaced, same size; If-Match ignored
        stream.seek(0)
        with pytest.raises(InvalidInputError) as raised:
            stream.read()
    assert str(raised.value) == "archive 'the link' changed while it was read; read it again"


def test_a_weak_etag_is_compared_but_not_sent_as_if_match_which_it_could_never_pass(server: RangeServer) -> None:
    server.etag = 'W/"v1"'
    with reader(server) as stream:
        assert read_end_then_start(stream) == DATA
    assert server.if_matches == [None, None, None]


def test_a_server_that_ignores_range_on_a_resume_is_refused_not_spliced_from_byte_0(server: RangeServer) -> None:
    server.drops, server.ranges_served = 1, 2  # the size GET, then the body GET is cut; then 200s
    with reader(server) as stream, pytest.raises(InvalidInputError) as raised:
        stream.read()
    assert str(raised.value) == ("archive 'the link': the server does not serve byte ranges (HTTP 200 to a "
                                 "Range request); labvault needs them to read the archive's directory and "
                                 "to resume")


def test_a_body_longer_than_the_range_it_declares_is_refused(server: RangeServer) -> None:
    server.declared_bytes = 100
    with reader(server) as stream, pytest.raises(InvalidInputError) as raised:
        read_end_then_start(stream)
    assert str(raised.value) == (f"archive 'the link': the server answered a request for bytes 0-{len(DATA) - 1} "
                                 f"of {len(DATA)} with bytes 0-99 of {len(DATA)}; its size changed or it does "
                                 "not serve Range requests as asked")


def test_a_gzip_encoded_body_is_refused_not_inflated(server: RangeServer) -> None:
    server.gzip = True
    with pytest.raises(InvalidInputError) as raised:
        reader(server)
    assert str(raised.value) == ("archive 'the link': the server sent it with Content-Encoding 'gzip' although "
                                 "identity was asked; labvault needs the archive's bytes as they are")


def test_a_trickling_server_ends_at_the_pace_deadline_and_the_read_thread_is_stopped(
        server: RangeServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(range_reader, "GRACE_SECONDS", 1)
    monkeypatch.setattr(range_reader, "MIN_BYTES_PER_SECOND", 100 * 1024 * 1024)
    server.trickle = 0.1  # a byte every 0.1 s: no read ever times out
    with reader(server) as stream, pytest.raises(TransientError) as raised:
        stream.read()
    assert str(raised.value) == (f"cannot read archive 'the link': {len(DATA)} bytes did not arrive in 1 s "
                                 "(less than 102400 KiB/s)")
    assert read_threads() == []


def test_closing_early_interrupts_the_read_thread_waiting_on_its_connection(
        server: RangeServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(range_reader, "BLOCK_BYTES", 1)
    server.trickle = 60  # the thread waits for the second byte longer than the stop waits for it
    with reader(server) as stream:
        assert stream.read(1) == DATA[:1]
        assert len(read_threads()) == 1
    assert read_threads() == []


def test_a_refused_connection_is_named_as_such() -> None:
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    with pytest.raises(TransientError) as raised:
        RangeReader(HttpRangeOpener(f"http://127.0.0.1:{port}/a.zip", "the link"), max_bytes=10)
    assert str(raised.value) == "cannot read archive 'the link': connection refused"
