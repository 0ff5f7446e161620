"""The resuming stream under verify and restore, against a small server that misbehaves."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from labvault.errors import InvalidInputError, TransientError
from labvault.range_openers import HttpRangeOpener
from labvault.range_reader import MAX_RESUMES, RangeReader
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
