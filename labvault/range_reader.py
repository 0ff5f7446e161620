"""An archive on S3 or behind an https link, read as one sequential stream that resumes.

Verify and restore read an archive's end (directory, manifest) and then every byte from the
first on, in order. s3fs served that as 50 MiB range requests, each a new GET; here a read
from a position opens one GET from there to the object's end, whose body a thread reads ahead
(1 MiB blocks, at most `AHEAD_BLOCKS` held) while the caller hashes the block before: the
network and the checksums overlap. A connection that drops or stalls is resumed with a Range
request from the last byte received, at most `MAX_RESUMES` times per reader; a resumed GET
must answer for the same object (If-Match on its ETag), so bytes of two versions never mix.

Bounded for hostile servers: the object's size is read from the first answer (`Content-Range`
of a one-byte GET) and must be within `max_bytes`; no request asks past it and no body is read
past what it asked; every read waits at most the opener's timeout, and the whole stream must
average at least `MIN_BYTES_PER_SECOND` after its first minute.
"""

from __future__ import annotations

import io
import queue
import threading
import time
from dataclasses import dataclass
from typing import Any, Protocol

from labvault.errors import InvalidInputError, TransientError

BLOCK_BYTES = 1024 * 1024
AHEAD_BLOCKS = 8
# A forward seek this short reads on through the open body rather than opening a new GET.
SKIP_BYTES = 4 * BLOCK_BYTES
MAX_RESUMES = 5
GRACE_SECONDS = 60
MIN_BYTES_PER_SECOND = 1024 * 1024


class Body(Protocol):
    def read(self, size: int) -> bytes: ...
    def close(self) -> None: ...


@dataclass(frozen=True)
class Opened:
    """One answered range GET: its body from `start`, the object's `total` size and ETag."""

    body: Body
    start: int
    total: int
    etag: str | None


class Opener(Protocol):
    """Sends `GET` with `Range: bytes=start-last` (and If-Match when `etag` is given).

    Raises `TransientError` for what a retry may fix (no connection, a timeout, a 5xx), saying
    why in a few words, and another `LabvaultError` naming the archive by `label` (a missing
    object, a refused link, a changed object) otherwise. A body's `read` raises on a broken
    connection or returns short; both are resumed."""

    label: str

    def __call__(self, start: int, last: int, etag: str | None) -> Opened: ...


class _Ahead:
    """A thread reading one body into a bounded queue, resuming it where it broke off."""

    def __init__(self, reader: RangeReader, start: int) -> None:
        self._reader = reader
        self.position = start
        self.blocks: queue.Queue[bytes | BaseException] = queue.Queue(AHEAD_BLOCKS)
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, name="range-read", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        reader, body = self._reader, None
        try:
            while self.position < reader.size and not self._stopped.is_set():
                if body is None:
                    body = reader._open(self.position)
                try:
                    block = body.read(min(BLOCK_BYTES, reader.size - self.position))
                except Exception as exc:  # the connection broke: resume from here
                    body.close()
                    body = None
                    reader._resumed(exc)
                    continue
                if not block:  # the body ended before its length: resume from here
                    body.close()
                    body = None
                    reader._resumed(None)
                    continue
                self.position += len(block)
                reader._check_pace()
                self._put(block)
        except BaseException as exc:  # handed to the reading thread, which raises it
            self._put(exc)
        finally:
            if body is not None:
                body.close()

    def _put(self, item: bytes | BaseException) -> None:
        while not self._stopped.is_set():
            try:
                self.blocks.put(item, timeout=0.5)
                return
            except queue.Full:
                continue

    def stop(self) -> None:
        self._stopped.set()
        self._thread.join()


class RangeReader(io.RawIOBase):
    """A seekable, read-only file over `opener`; reads from one position on stream one GET."""

    def __init__(self, opener: Opener, *, max_bytes: int) -> None:
        super().__init__()
        self._opener = opener
        self.label = opener.label
        self._started = time.monotonic()
        self._resumes = 0
        self._lock = threading.Lock()
        try:
            first = opener(0, 0, None)
        except TransientError as exc:
            raise TransientError(f"cannot read archive {self.label!r}: {exc}") from exc
        first.body.close()
        self.size, self._etag = first.total, first.etag
        if self.size > max_bytes:
            raise InvalidInputError(f"archive {self.label!r} is {self.size} bytes, over the limit of "
                                    f"{max_bytes} (LABVAULT_ARCHIVE_MAX_BYTES)")
        self._position = 0
        self._ahead: _Ahead | None = None
        self._block = memoryview(b"")

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._position

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        target = {io.SEEK_SET: 0, io.SEEK_CUR: self._position, io.SEEK_END: self.size}[whence] + offset
        target = min(max(target, 0), self.size)
        if self._ahead is not None and 0 <= target - self._position <= SKIP_BYTES:
            self._take(target - self._position)
        elif target != self._position:
            self._stop()
        self._position = target
        return target

    def read(self, size: int | None = -1) -> bytes:
        wanted = self.size - self._position if size is None or size < 0 else size
        return b"".join(self._take(min(wanted, self.size - self._position)))

    def readinto(self, buffer: Any) -> int:
        data = self.read(len(buffer))
        buffer[:len(data)] = data
        return len(data)

    def readall(self) -> bytes:
        return self.read()

    def _take(self, count: int) -> list[memoryview]:
        """`count` bytes from the read-ahead, starting it here if none runs."""
        pieces = []
        while count:
            if not self._block:
                if self._ahead is None:
                    self._ahead = _Ahead(self, self._position)
                item = self._ahead.blocks.get()
                if isinstance(item, BaseException):
                    self._stop()
                    raise item
                self._block = memoryview(item)
            piece = self._block[:count]
            self._block = self._block[len(piece):]
            self._position += len(piece)
            count -= len(piece)
            pieces.append(piece)
        return pieces

    def _stop(self) -> None:
        if self._ahead is not None:
            self._ahead.stop()
            self._ahead = None
        self._block = memoryview(b"")

    def close(self) -> None:
        self._stop()
        super().close()

    # Called from the read-ahead thread.

    def _open(self, start: int) -> Body:
        """A body from `start` to the end, opened again (up to `MAX_RESUMES` times per reader)
        when the endpoint cannot be reached for now."""
        while True:
            try:
                opened = self._opener(start, self.size - 1, self._etag)
            except TransientError as exc:
                self._resumed(exc)
                continue
            if opened.start != start or opened.total != self.size:
                opened.body.close()
                raise InvalidInputError(f"archive {self.label!r}: the server answered a request for "
                                        f"bytes {start}- with bytes {opened.start}- of {opened.total}; "
                                        "its size changed or it ignores Range requests")
            return opened.body

    def _resumed(self, exc: BaseException | None) -> None:
        with self._lock:
            self._resumes += 1
            if self._resumes > MAX_RESUMES:
                reason = _reason(exc) if exc is not None else "the body ended before its length"
                raise TransientError(f"cannot read archive {self.label!r}: {reason} "
                                     f"({MAX_RESUMES} resumes tried)")
            pause = min(0.1 * 2 ** (self._resumes - 1), 2)
        time.sleep(pause)
        self._check_pace()

    def _check_pace(self) -> None:
        elapsed = time.monotonic() - self._started
        if elapsed > GRACE_SECONDS + self.size / MIN_BYTES_PER_SECOND:
            raise TransientError(f"cannot read archive {self.label!r}: {self.size} bytes did not arrive "
                                 f"in {elapsed:.0f} s (less than {MIN_BYTES_PER_SECOND // 1024} KiB/s)")


def _reason(exc: BaseException) -> str:
    """A short reason that never repeats a URL (a presigned link's signature is in its query)."""
    text = getattr(exc, "strerror", None)
    if text:
        return str(text)
    if isinstance(exc, TransientError | InvalidInputError):
        return str(exc)
    return "the connection broke" if not isinstance(exc, TimeoutError) else "timed out"

