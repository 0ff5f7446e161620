"""Opening the next few objects while one is being copied.

Opening an object in a remote store costs a round trip before its first byte (an S3 GET: tens
of milliseconds on AWS, more from a busy endpoint); paid one object after another, 200 files
spent 1.7 s of a 1 GB backup waiting for first bytes. Opened a few ahead on threads, that wait
overlaps the copy of the objects before. An object is opened ahead only while little stands
before it: an S3 response left unread while gigabytes are copied first may be dropped by the
server, so the bytes queued before it are bounded too.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import suppress
from typing import Protocol, TypeVar


class Closable(Protocol):
    def close(self) -> None: ...


Item = TypeVar("Item")
Opened = TypeVar("Opened", bound=Closable)


def opened_ahead(items: Iterable[Item], open_one: Callable[[Item], Opened], *, depth: int,
                 size: Callable[[Item], int | None], max_bytes_ahead: int) -> Iterator[tuple[Item, Opened]]:
    """Each item with its object opened, in the items' order, while up to `depth` more open.

    An item is opened early only when the items to be copied before it add up to at most
    `max_bytes_ahead` (`size` of each; None, unknown, counts as too many). The caller closes each
    object it is given. Objects opened but never handed out (the caller stopped early, or an
    earlier open failed) are closed here; an open's error is raised when its item's turn comes,
    so errors arrive in order too. With `depth` 0 each item is opened when its turn comes, on
    the caller's thread (a local file opens in microseconds: a thread hand-off would cost more).
    """
    if depth == 0:
        yield from ((item, open_one(item)) for item in items)
        return
    pool = ThreadPoolExecutor(depth, thread_name_prefix="open-ahead")
    pending: deque[tuple[Item, Future[Opened]]] = deque()

    def before() -> int:
        return sum(max_bytes_ahead + 1 if (bytes_ := size(item)) is None else bytes_ for item, _ in pending)

    try:
        for item in items:
            while pending and (len(pending) > depth or before() > max_bytes_ahead):
                yield _next(pending)
            pending.append((item, pool.submit(open_one, item)))
        while pending:
            yield _next(pending)
    finally:
        for _, future in pending:
            if not future.cancel():
                with suppress(Exception):  # its error no longer matters: nobody will read it
                    future.result().close()
        pool.shutdown()


def _next(pending: deque[tuple[Item, Future[Opened]]]) -> tuple[Item, Opened]:
    item, future = pending.popleft()
    return item, future.result()
