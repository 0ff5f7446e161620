"""The range GETs under `RangeReader`: an S3 object through boto3, a link through urllib3.

Every message names the archive by its label, which for a link is the URL masked
(`url_secrets.masked_url`): a presigned link's signature and credential never reach an error
line, a log or a report. urllib3's own errors are not passed on as text, since they can quote
the request's path and query.
"""

from __future__ import annotations

import re
from typing import Any

from labvault.errors import InvalidInputError, TransientError
from labvault.storage.range_reader import Opened, changed

CONNECT_TIMEOUT = 5
READ_TIMEOUT = 30
_CONTENT_RANGE = re.compile(r"bytes (?:(\d+)-(\d+)|\*)/(\d+)")


class _Empty:
    def read(self, size: int) -> bytes:
        return b""

    def close(self) -> None:
        """Nothing to close."""


def _content_range(value: str | None, label: str, *, unsatisfied: bool = False) -> tuple[int, int, int]:
    """(first byte, last byte, total size) of a `Content-Range` header: a range within the total,
    or (an `unsatisfied` answer, 416) `*` and the total alone."""
    match = _CONTENT_RANGE.fullmatch((value or "").strip())
    if match and match.group(1) is None and unsatisfied:
        return 0, -1, int(match.group(3))
    if not match or match.group(1) is None or not int(match.group(1)) <= int(match.group(2)) < int(match.group(3)):
        raise InvalidInputError(f"archive {label!r}: the server did not answer a Range request with "
                                "a valid Content-Range; it must serve byte ranges")
    return int(match.group(1)), int(match.group(2)), int(match.group(3))


def _gone(label: str) -> FileNotFoundError:
    return FileNotFoundError(f"archive {label!r} does not exist")


def s3_read_client(**options: Any) -> Any:
    """A boto3 client (of a session of its own) whose waits are bounded: an endpoint that does
    not answer took 12 s (refusing) to 79 s (silent) under s3fs's five tries of botocore's
    retries; here two attempts, 3 s to connect, 5 s without a byte, and the reader resumes."""
    import boto3
    from botocore.config import Config

    config = Config(connect_timeout=3, read_timeout=5, retries={"total_max_attempts": 2, "mode": "standard"})
    return boto3.session.Session().client("s3", config=config, **options)


class S3RangeOpener:
    """Range GETs of one S3 object through a boto3 client (its timeouts and retries apply)."""

    def __init__(self, client: Any, bucket: str, key: str, label: str) -> None:
        self._client, self._bucket, self._key, self.label = client, bucket, key, label

    def __call__(self, start: int, last: int, etag: str | None) -> Opened:
        from botocore.exceptions import BotoCoreError, ClientError

        options = {"Range": f"bytes={start}-{last}", **({"IfMatch": etag} if etag else {})}
        try:
            response = self._client.get_object(Bucket=self._bucket, Key=self._key, **options)
        except ClientError as exc:
            error = exc.response.get("Error", {})
            code = str(error.get("Code", ""))
            if code in ("NoSuchKey", "404"):
                raise _gone(self.label) from None
            if code in ("AccessDenied", "403"):
                raise InvalidInputError(f"cannot read archive {self.label!r}: permission denied") from None
            if code in ("PreconditionFailed", "412"):
                raise changed(self.label) from None
            if code == "InvalidRange" and start == 0:  # an empty object has no byte 0
                return Opened(_Empty(), 0, -1, 0, None)
            raise TransientError(str(error.get("Message") or code)) from exc
        except BotoCoreError as exc:
            raise TransientError(str(exc)) from exc
        first, last, total = _content_range(response.get("ContentRange"), self.label)
        return Opened(response["Body"], first, last, total, response.get("ETag"))


class HttpRangeOpener:
    """Range GETs of an http(s) link through urllib3: no redirects, no retries of its own
    (the reader resumes), `CONNECT_TIMEOUT` to connect and `READ_TIMEOUT` per read. Bodies are
    never decoded: a body sent with a Content-Encoding is refused (`_identity`)."""

    def __init__(self, url: str, label: str) -> None:
        import urllib3

        self._url, self.label = url, label
        self._pool = urllib3.PoolManager(retries=False, timeout=urllib3.Timeout(
            connect=CONNECT_TIMEOUT, read=READ_TIMEOUT))

    def __call__(self, start: int, last: int, etag: str | None) -> Opened:
        import urllib3

        headers = {"Range": f"bytes={start}-{last}", "Accept-Encoding": "identity",
                   **({"If-Match": etag} if etag else {})}
        try:
            response = self._pool.request("GET", self._url, headers=headers, preload_content=False,
                                          decode_content=False, redirect=False)
        except urllib3.exceptions.HTTPError as exc:  # never its text: it may quote the query
            raise TransientError(_connection_reason(exc)) from None
        status = response.status
        if status in (206, 416):
            try:
                first, last, total = _content_range(response.headers.get("Content-Range"), self.label,
                                                    unsatisfied=status == 416)
                _identity(response.headers.get("Content-Encoding"), self.label)
            except InvalidInputError:
                _HttpBody(response).close()
                raise
            if status == 416 and not (start == 0 and total == 0):
                response.release_conn()
                raise changed(self.label)
            return Opened(_HttpBody(response) if status == 206 else _Empty(), first, last, total,
                          response.headers.get("ETag"))
        response.release_conn()
        if status == 404:
            raise _gone(self.label)
        if status == 412:
            raise changed(self.label)
        if status >= 500 or status == 429:
            raise TransientError(f"the server answered HTTP {status}")
        if status == 200:
            raise InvalidInputError(f"archive {self.label!r}: the server does not serve byte ranges "
                                    "(HTTP 200 to a Range request); labvault needs them to read the "
                                    "archive's directory and to resume")
        hint = "; the link may have expired" if status in (401, 403) else ""
        if 300 <= status < 400:
            hint = " (a redirect, not followed); give the link it leads to"
        raise InvalidInputError(f"cannot read archive {self.label!r}: the server answered HTTP {status}{hint}")


def _identity(encoding: str | None, label: str) -> None:
    """Refuse a body sent encoded (gzip) although `identity` was asked: its bytes are not the
    archive's, and the ranges of an encoded body do not count the archive's bytes."""
    sent = (encoding or "identity").strip()
    if sent.lower() != "identity":
        raise InvalidInputError(f"archive {label!r}: the server sent it with Content-Encoding "
                                f"{sent!r} although identity was asked; labvault needs "
                                "the archive's bytes as they are")


class _HttpBody:
    """A response's body read exactly: a short or broken one raises (and is resumed). Closed
    before its end (also from another thread, interrupting a read), its connection is shut
    down rather than handed back to the pool with bytes still arriving on it."""

    def __init__(self, response: Any) -> None:
        self._response = response

    def read(self, size: int) -> bytes:
        import urllib3

        try:
            return bytes(self._response.read(size))
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise TransientError(_connection_reason(exc)) from None

    def close(self) -> None:
        if not self._response.isclosed() and self._response.connection is not None:
            self._response.shutdown()
            self._response.close()
        self._response.release_conn()


def _connection_reason(exc: BaseException) -> str:
    """A few words on why a connection failed, from the cause's type, never a message that
    could quote the URL."""
    import urllib3

    cause = exc
    while cause.__context__ is not None and not isinstance(cause, OSError):
        cause = cause.__context__
    if isinstance(exc, urllib3.exceptions.SSLError):
        return "TLS handshake failed"
    if isinstance(cause, OSError) and cause.strerror:  # before timeouts: a refused connection is
        return cause.strerror.lower()                  # a NewConnectionError, a ConnectTimeoutError
    if isinstance(exc, urllib3.exceptions.TimeoutError) or isinstance(cause, TimeoutError):
        return "timed out"
    if isinstance(exc, urllib3.exceptions.ProtocolError | urllib3.exceptions.IncompleteRead):
        return "the connection broke"
    return "cannot connect"

