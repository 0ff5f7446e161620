"""An archive on S3 or behind an https link, read as one sequential stream that resumes.

Verify and restore read an archive's end (directory, manifest) and then every byte from the
first on, in order. s3fs served that as 50 MiB range requests, each a new GET; here a read
from a position opens one GET from there to the object's end, whose body a thread reads ahead
(1 MiB blocks, at most `AHEAD_BLOCKS` held) while the caller hashes the block before: the
network and the checksums overlap. A connection that drops or stalls is resumed with a Range
request from the last byte received, at most `MAX_RESUMES` times per reader; a resumed GET
must answer for the same object, so bytes of two versions never mix: it is sent If-Match on a
strong ETag (a weak one never matches, so it is only compared), and every answer must carry the
first answer's ETag and exactly the range asked for (a server that ignores Range or If-Match, or
declares one range and sends another, is refused).

Bounded for hostile servers: the object's size is read from the first answer (`Content-Range`
of a one-byte GET) and must be within `max_bytes`; no request asks past it and no body is read
past what it asked; the whole stream must average at least `MIN_BYTES_PER_SECOND` after its
first minute, a deadline the caller's reads wait for at most (a server trickling a byte at a time
never times a read out). Closing stops the thread and interrupts its body (`Body.close` may be
called from another thread), waiting for it at most `STOP_SECONDS`.
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
MAX_OBJECT_BYTES = 10 * 1024**4  # the most a stream of one object reads: an archive's bound
AHEAD_BLOCKS = 8
# A forward seek this short reads on through the open body rather than opening a new GET.
SKIP_BYTES = 4 * BLOCK_BYTES
MAX_RESUMES = 5
GRACE_SECONDS = 60
MIN_BYTES_PER_SECOND = 1024 * 1024
STOP_SECONDS = 5


class Body(Protocol):
    """A GET's body. `close` may be called from another thread while `read` waits, and then makes
    it return or raise soon."""

    def read(self, size: int) -> bytes: ...
    def close(self) -> None: ...


@dataclass(frozen=True)
class Opened:
    """One answered range GET: its body of bytes `start` to `last`, the object's `total` size and ETag."""

    body: Body
    start: int
    last: int
    total: int
    etag: str | None


def changed(label: str) -> InvalidInputError:
    return InvalidInputError(f"archive {label!r} changed while it was read; read it again")


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
        self._lock = threading.Lock()
        self._body: Body | None = None
        self._thread = threading.Thread(target=self._run, name="range-read", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        reader = self._reader
        try:
            while self.position < reader.size and not self._stopped.is_set():
                body = self._body or self._hold(reader._open(self.position))
                if body is None:
                    return
                broke: Exception | None = None
                try:
                    block = body.read(min(BLOCK_BYTES, reader.size - self.position))
                except Exception as exc:
                    block, broke = b"", exc
                if not block:  # the connection broke or the body ended short: resume from here
                    self._drop()
                    if not self._stopped.is_set():
                        reader._resumed(broke)
                    continue
                self.position += len(block)
                reader._check_pace()
                self._put(block)
        except BaseException as exc:  # handed to the reading thread, which raises it
            self._put(exc)
        finally:
            self._drop()

    def _hold(self, body: Body) -> Body | None:
        """`body` as the one `stop` interrupts; closed at once (None) if stopped meanwhile."""
        with self._lock:
            if not self._stopped.is_set():
                self._body = body
                return body
        body.close()
        return None

    def _drop(self) -> None:
        with self._lock:
            body, self._body = self._body, None
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
        """Stop the thread, interrupting a read it waits on. A thread still waiting for a GET's
        headers after `STOP_SECONDS` is left to end with that GET (a daemon holding no block)."""
        with self._lock:
            self._stopped.set()
        self._drop()
        self._thread.join(STOP_SECONDS)


class RangeReader(io.RawIOBase):
    """A seekable, read-only file over `opener`; reads from one position on stream one GET."""

    def __init__(self, opener: Opener, *, max_bytes: int) -> None:
        super().__init__()
        self._opener = opener
        self.label = opener.label
        self._resumes = 0
        self._lock = threading.Lock()
        try:
            first = opener(0, 0, None)
        except TransientError as exc:
            raise TransientError(f"cannot read archive {self.label!r}: {exc}") from exc
        first.body.close()
        self.size, self._etag = first.total, first.etag
        self._deadline = time.monotonic() + GRACE_SECONDS + self.size / MIN_BYTES_PER_SECOND
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
                try:
                    item = self._ahead.blocks.get(timeout=max(self._deadline - time.monotonic(), 0))
                except queue.Empty:
                    item = self._too_slow()
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
            strong = self._etag if self._etag and not self._etag.startswith("W/") else None
            try:
                opened = self._opener(start, self.size - 1, strong)
            except TransientError as exc:
                self._resumed(exc)
                continue
            if opened.etag != self._etag:
                opened.body.close()
                raise changed(self.label)
            if (opened.start, opened.last, opened.total) != (start, self.size - 1, self.size):
                opened.body.close()
                raise InvalidInputError(f"archive {self.label!r}: the server answered a request for "
                                        f"bytes {start}-{self.size - 1} of {self.size} with bytes "
                                        f"{opened.start}-{opened.last} of {opened.total}; its size "
                                        "changed or it does not serve Range requests as asked")
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
        if time.monotonic() > self._deadline:
            raise self._too_slow()

    def _too_slow(self) -> TransientError:
        allowed = GRACE_SECONDS + self.size / MIN_BYTES_PER_SECOND
        return TransientError(f"cannot read archive {self.label!r}: {self.size} bytes did not arrive "
                              f"in {allowed:.0f} s (less than {MIN_BYTES_PER_SECOND // 1024} KiB/s)")


def _reason(exc: BaseException) -> str:
    """A short reason that never repeats a URL (a presigned link's signature is in its query)."""
    text = getattr(exc, "strerror", None)
    if text:
        return str(text)
    if isinstance(exc, TransientError | InvalidInputError):
        return str(exc)
    return "the connection broke" if not isinstance(exc, TimeoutError) else "timed out"

