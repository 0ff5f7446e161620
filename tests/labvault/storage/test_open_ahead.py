"""Opening objects ahead of the copy: same order, bounded, nothing left open."""

from __future__ import annotations

import io
import threading
import time

import pytest

from labvault.storage.open_ahead import opened_ahead

SMALL = {"depth": 4, "size": lambda item: 1, "max_bytes_ahead": 100}  # every item may open ahead


class Opener:
    """Opens in-memory objects slowly, counting how many are open at once."""

    def __init__(self, fail: int | None = None) -> None:
        self.fail = fail
        self.opened: list[io.BytesIO] = []
        self.most_at_once = 0
        self._lock = threading.Lock()

    def __call__(self, item: int) -> io.BytesIO:
        time.sleep(0.01)
        if item == self.fail:
            raise FileNotFoundError(f"object {item} is missing")
        blob = io.BytesIO(b"object %d" % item)
        with self._lock:
            self.opened.append(blob)
            self.most_at_once = max(self.most_at_once, sum(not b.closed for b in self.opened))
        return blob

    def still_open(self) -> int:
        return sum(not blob.closed for blob in self.opened)


def test_objects_come_in_order_with_a_bounded_number_open() -> None:
    opener = Opener()
    seen = []
    for item, source in opened_ahead(range(50), opener, **SMALL):
        with source:
            seen.append((item, source.read()))
    assert seen == [(i, b"object %d" % i) for i in range(50)]
    assert 1 < opener.most_at_once <= 5  # the one being copied and four ahead
    assert opener.still_open() == 0


def test_stopping_early_closes_what_was_opened_ahead() -> None:
    opener = Opener()
    stream = opened_ahead(range(50), opener, **SMALL)
    for item, source in stream:
        source.close()
        if item == 9:
            break
    stream.close()
    assert len(opener.opened) < 50 and opener.still_open() == 0


def test_a_failed_open_comes_in_its_turn_and_leaves_nothing_open() -> None:
    opener = Opener(fail=7)
    seen = []
    with pytest.raises(FileNotFoundError, match="object 7 is missing"):
        for item, source in opened_ahead(range(50), opener, **SMALL):
            with source:
                seen.append(item)
    assert seen == list(range(7))
    assert opener.still_open() == 0


def test_an_object_is_not_opened_ahead_of_more_than_the_byte_bound() -> None:
    """An S3 response left unread while much is copied first may be dropped by the server."""
    sizes = [10, 10, 100, 10, 10, 10, 10, None, 10, 10]  # None: size unknown
    copied = 0
    opened_when: dict[int, int] = {}

    def open_one(item: int) -> io.BytesIO:
        opened_when[item] = copied
        return io.BytesIO(b"x")

    waited = {}
    for item, source in opened_ahead(range(len(sizes)), open_one, depth=4,
                                     size=lambda item: sizes[item], max_bytes_ahead=25):
        with source:
            waited[item] = copied - opened_when[item]
            copied += sizes[item] or 1000
    assert all(bytes_ <= 25 for bytes_ in waited.values()), waited
    assert waited[1] == 10 and waited[3] == 0 and waited[4] == 10  # ahead when little stands before
    assert waited[8] == 0  # nothing opens ahead past an object of unknown size


def test_depth_zero_opens_each_object_on_the_callers_thread_when_its_turn_comes() -> None:
    opener = Opener()
    threads = set()

    def open_one(item: int) -> io.BytesIO:
        threads.add(threading.current_thread())
        return opener(item)

    for item, source in opened_ahead(range(10), open_one, depth=0, size=lambda item: 1, max_bytes_ahead=100):
        with source:
            assert source.read() == b"object %d" % item
        assert len(opener.opened) == item + 1  # nothing opened ahead of its turn
    assert threads == {threading.current_thread()}
    assert opener.most_at_once == 1
