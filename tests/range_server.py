"""A small http server of one archive's bytes for the link tests: Range requests answered as S3
answers them (206, Content-Range, ETag, If-Match compared strongly), and the faults a link can
meet on its way: a connection dropped mid-body, a body that never ends or trickles, no Range
support (from some request on), a refusal, an If-Match ignored, a range declared but not the one
sent, a body sent gzip-encoded."""

from __future__ import annotations

import gzip
import itertools
import re
import threading
import time
from collections.abc import Iterable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class _QuietServer(ThreadingHTTPServer):
    def handle_error(self, request: object, client_address: object) -> None:
        """A client closing a cut or endless body is what these tests do: not an error."""


class RangeServer:
    """Serves `data` at any path on loopback. `drops` is how many GETs are cut after half their
    body (negative: all); `endless` streams bytes past the asked range with no length;
    `trickle` sends a body one byte every that many seconds; `status` answers every GET with that code
    instead; `ranges_served` is how many Range GETs are answered before the server answers
    200 with the whole object; `etag` is the object's version (change it to replace the
    object; None: no ETag); `ignore_if_match` serves the current object whatever If-Match asks;
    `declared_bytes` declares only that many bytes in Content-Range, then sends the whole rest
    with no length; `gzip` sends bodies gzip-encoded; `ranges` and `if_matches` list what every
    GET asked for."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.drops = 0
        self.endless = False
        self.status: int | None = None
        self.trickle = 0.0
        self.ranges_served: int | None = None
        self.etag: str | None = '"v1"'
        self.ignore_if_match = False
        self.declared_bytes: int | None = None
        self.gzip = False
        self.ranges: list[str] = []
        self.if_matches: list[str | None] = []
        self.paths: list[str] = []
        self._server = _QuietServer(("127.0.0.1", 0), self._handler())
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                """Quiet."""

            def do_GET(self) -> None:
                data = server.data
                asked = self.headers.get("Range", "")
                server.ranges.append(asked)
                server.paths.append(self.path)
                if_match = self.headers.get("If-Match")
                server.if_matches.append(if_match)
                if server.status is not None:
                    self._answer(server.status, b"no", {})
                    return
                match = re.fullmatch(r"bytes=(\d+)-(\d*)", asked)
                version = {"ETag": server.etag} if server.etag else {}
                if match is None or server.ranges_served == 0:
                    self._answer(200, data, version)
                    return
                if server.ranges_served is not None:
                    server.ranges_served -= 1
                strong = server.etag is not None and not server.etag.startswith("W/")
                if if_match is not None and not server.ignore_if_match and (if_match, strong) != (server.etag, True):
                    self._answer(412, b"", {})
                    return
                start = int(match.group(1))
                last = min(int(match.group(2) or len(data) - 1), len(data) - 1)
                if start >= len(data):
                    self._answer(416, b"", {"Content-Range": f"bytes */{len(data)}"})
                    return
                body = data[start:last + 1]
                headers = {**version, "Content-Range": f"bytes {start}-{last}/{len(data)}"}
                if server.gzip:
                    body, headers["Content-Encoding"] = gzip.compress(body), "gzip"
                if server.declared_bytes is not None and len(body) > server.declared_bytes:
                    headers["Content-Range"] = f"bytes {start}-{start + server.declared_bytes - 1}/{len(data)}"
                    self._unframed(headers, [body])
                    return
                if server.trickle and len(body) > 1:
                    self._unframed(headers, (body[index:index + 1] for index in range(len(body))), server.trickle)
                    return
                if server.endless:
                    self._unframed(headers, itertools.repeat(b"\0" * 65536))
                    return
                if server.drops and len(body) > 1:
                    server.drops -= 1 if server.drops > 0 else 0
                    self.send_response(206)
                    for name, value in headers.items():
                        self.send_header(name, value)
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body[:len(body) // 2])
                    self.wfile.flush()
                    self.close_connection = True
                    return
                self._answer(206, body, headers)

            def _unframed(self, headers: dict[str, str], pieces: Iterable[bytes], pause: float = 0) -> None:
                """A 206 whose body ends when the connection closes, sent in `pieces`."""
                self.send_response(206)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Connection", "close")
                self.end_headers()
                try:
                    for piece in pieces:
                        self.wfile.write(piece)
                        self.wfile.flush()
                        time.sleep(pause)
                except OSError:
                    pass
                self.close_connection = True

            def _answer(self, status: int, body: bytes, headers: dict[str, str]) -> None:
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        return Handler
