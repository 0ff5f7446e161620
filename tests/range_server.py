"""A small http server of one archive's bytes for the link tests: Range requests answered as S3
answers them (206, Content-Range, ETag, If-Match), and the faults a link can meet on its way:
a connection dropped mid-body, a body that never ends, no Range support, a refusal."""

from __future__ import annotations

import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

class _QuietServer(ThreadingHTTPServer):
    def handle_error(self, request: object, client_address: object) -> None:
        """A client closing a cut or endless body is what these tests do: not an error."""


class RangeServer:
    """Serves `data` at any path on loopback. `drops` is how many GETs are cut after half their
    body (negative: all); `endless` streams bytes past the asked range with no length;
    `status` answers every GET with that code instead; `etag` is the object's version (change it
    to replace the object); `ranges` lists every Range asked for."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.drops = 0
        self.endless = False
        self.status: int | None = None
        self.etag = '"v1"'
        self.ranges: list[str] = []
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
                if server.status is not None:
                    self._answer(server.status, b"no", {})
                    return
                match = re.fullmatch(r"bytes=(\d+)-(\d*)", asked)
                if match is None:
                    self._answer(200, data, {"ETag": server.etag})
                    return
                if self.headers.get("If-Match") not in (None, server.etag):
                    self._answer(412, b"", {})
                    return
                start = int(match.group(1))
                last = min(int(match.group(2) or len(data) - 1), len(data) - 1)
                if start >= len(data):
                    self._answer(416, b"", {"Content-Range": f"bytes */{len(data)}"})
                    return
                body = data[start:last + 1]
                headers = {"ETag": server.etag, "Content-Range": f"bytes {start}-{last}/{len(data)}"}
                if server.endless:
                    self.send_response(206)
                    for name, value in headers.items():
                        self.send_header(name, value)
                    self.send_header("Connection", "close")
                    self.end_headers()
                    try:
                        while True:
                            self.wfile.write(b"\0" * 65536)
                    except OSError:
                        pass
                    self.close_connection = True
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

            def _answer(self, status: int, body: bytes, headers: dict[str, str]) -> None:
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        return Handler
