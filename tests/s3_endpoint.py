"""A real S3 protocol endpoint for tests: moto_server on a free loopback port, and a proxy in
front of it that injects faults into multipart part uploads."""

from __future__ import annotations

import http.client
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx

HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "expect", "content-length"}
INTERNAL_ERROR = (b'<?xml version="1.0" encoding="UTF-8"?><Error><Code>InternalError</Code>'
                  b"<Message>injected fault</Message></Error>")


@contextmanager
def moto_server(port: int, log: Path) -> Iterator[str]:
    """Start `moto_server` as a subprocess, wait until it answers, stop it by its own PID."""
    binary = Path(sys.executable).with_name("moto_server")
    with log.open("wb") as output:
        process = subprocess.Popen([str(binary), "-H", "127.0.0.1", "-p", str(port)],
                                   stdout=output, stderr=subprocess.STDOUT)
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 60
            while True:
                try:
                    httpx.get(url, timeout=1)
                    break
                except httpx.TransportError:
                    if process.poll() is not None or time.monotonic() > deadline:
                        raise RuntimeError(f"moto_server did not start: {log.read_text()}") from None
                    time.sleep(0.2)
            yield url
        finally:
            process.terminate()
            process.wait(timeout=30)


class FaultProxy:
    """Forwards every request to the endpoint, failing UploadPart requests while `failures` > 0
    (a negative number fails them for good) with a 500 InternalError, as S3 itself sometimes does;
    with `cut_downloads` set, a GET of a key containing it gets half its body, then the
    connection closes (a network failure in the middle of a download)."""

    def __init__(self, upstream: str) -> None:
        self.upstream = urlsplit(upstream)
        self.failures = 0
        self.cut_downloads: str | None = None
        self.failed = 0
        self.part_uploads = 0
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _should_fail(self, method: str, path: str) -> bool:
        query = parse_qs(urlsplit(path).query)
        if method != "PUT" or "partNumber" not in query or "uploadId" not in query:
            return False
        with self._lock:
            self.part_uploads += 1
            if self.failures == 0:
                return False
            self.failures -= 1 if self.failures > 0 else 0
            self.failed += 1
            return True

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                """Quiet."""

            def _body(self) -> bytes:
                if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                    data = b""
                    while True:
                        size = int(self.rfile.readline().split(b";")[0], 16)
                        if size == 0:
                            while self.rfile.readline() not in (b"\r\n", b""):
                                pass
                            return data
                        data += self.rfile.read(size)
                        self.rfile.readline()
                return self.rfile.read(int(self.headers.get("Content-Length") or 0))

            def _forward(self) -> None:
                body = self._body()
                if proxy._should_fail(self.command, self.path):
                    self._reply(500, [("Content-Type", "application/xml")], INTERNAL_ERROR)
                    return
                connection = http.client.HTTPConnection(proxy.upstream.hostname, proxy.upstream.port,
                                                        timeout=60)
                headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
                headers["Content-Length"] = str(len(body))
                connection.request(self.command, self.path, body=body, headers=headers)
                response = connection.getresponse()
                data = response.read()
                if (proxy.cut_downloads and self.command == "GET" and proxy.cut_downloads in self.path
                        and response.status == 200):
                    self._reply_cut(response.getheaders(), data)
                    connection.close()
                    return
                dropped = HOP_BY_HOP - ({"content-length"} if self.command == "HEAD" else set())
                self._reply(response.status, [(k, v) for k, v in response.getheaders()
                                              if k.lower() not in dropped], data)
                connection.close()

            def _reply_cut(self, headers: list[tuple[str, str]], data: bytes) -> None:
                """The whole body announced, half of it sent, the connection closed."""
                self.send_response(200)
                for key, value in headers:
                    if key.lower() not in HOP_BY_HOP:
                        self.send_header(key, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data[:len(data) // 2])
                self.wfile.flush()
                self.close_connection = True

            def _reply(self, status: int, headers: list[tuple[str, str]], data: bytes) -> None:
                self.send_response(status)
                for key, value in headers:
                    self.send_header(key, value)
                if self.command != "HEAD":
                    self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _forward

        return Handler
