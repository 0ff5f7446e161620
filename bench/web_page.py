"""`python -m bench.web_page`: the Backups page of a 10,000-backup organization, and a 1 GB download.

Starts `labvault web` on a loopback port (SQLite by default, `--postgres` for PostgreSQL), signs
in with a printed link, then measures, from a client on loopback:
- list and detail pages: median and p95 latency over `--requests` requests each
  (goal: p95 under 100 ms);
- the download of a 1 GB archive with curl, against `cat` of the same file to /dev/null and
  against curl reading the file itself (`file://`), in the same run (goal: at least 0.8 x cat).
Writes bench/results/web.json.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results" / "web.json"
LABVAULT = Path(sys.executable).with_name("labvault")


def seed(database_url: str, backups_folder: Path, backups: int, archive_bytes: int) -> str:
    """An organization with one admin and `backups` backups, the newest Completed with an
    archive of `archive_bytes`; returns that backup's sid."""
    from labvault.db.engine import session_factory, upgrade_schema
    from labvault.db.models import Backup, BackupStatus, Organization, User
    from labvault.utc import utcnow

    upgrade_schema(database_url)
    now = utcnow()
    with session_factory(database_url)() as session:
        session.add(Organization(sid="bench-lab", name="Bench lab"))
        session.add(User(organization_sid="bench-lab", email="admin@bench.example", name="Admin", is_admin=True))
        session.flush()
        session.add_all(Backup(
            sid=f"bk-{index:012x}", organization_sid="bench-lab", name=f"Nightly {index}",
            description="scheduled", created_by="admin@bench.example",
            status=BackupStatus.ERROR if index % 50 == 1 else BackupStatus.COMPLETED,
            versions=20_000, files=200, file_size=archive_bytes, cost=0.1,
            date_created=now - timedelta(hours=index), date_completed=now - timedelta(hours=index),
            date_expired=now + timedelta(days=30)) for index in range(backups))
        session.commit()
    newest = "bk-000000000000"
    archive = backups_folder / "bench-lab" / f"{newest}.zip"
    archive.parent.mkdir(parents=True, exist_ok=True)
    block = os.urandom(1024 * 1024)
    with archive.open("wb") as out:
        for _ in range(archive_bytes // len(block)):
            out.write(block)
    return newest


def start_web(env: dict[str, str], port: int) -> tuple[subprocess.Popen[str], str]:
    """`labvault web --as admin`, and the sign-in link it prints."""
    process = subprocess.Popen([str(LABVAULT), "web", "--port", str(port), "--as", "admin@bench.example"],
                               env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert process.stdout is not None
    link = ""
    while not link:
        line = process.stdout.readline()
        if not line:
            raise RuntimeError("labvault web stopped before printing its sign-in link")
        found = re.search(r"(http://\S+/sign-in/link\?token=\S+)", line)
        link = found.group(1) if found else ""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            httpx.get(f"http://127.0.0.1:{port}/sign-in", timeout=1)
            break
        except httpx.TransportError:
            time.sleep(0.2)
    return process, link


def signed_in_client(link: str) -> httpx.Client:
    client = httpx.Client(timeout=60)
    confirm = client.get(link)
    token = link.split("token=")[1]
    csrf = re.search(r'name="csrf" value="([^"]+)"', confirm.text).group(1)  # type: ignore[union-attr]
    done = client.post(link.split("?")[0], data={"token": token, "csrf": csrf})
    assert done.status_code == 303, done.text
    return client


def latencies(client: httpx.Client, url: str, requests: int) -> dict[str, float]:
    client.get(url)  # warm
    times = []
    for _ in range(requests):
        start = time.perf_counter()
        response = client.get(url)
        times.append((time.perf_counter() - start) * 1000)
        assert response.status_code == 200, (url, response.status_code)
    times.sort()
    return {"median_ms": round(statistics.median(times), 1),
            "p95_ms": round(times[int(len(times) * 0.95) - 1], 1)}


def timed(command: list[str], repeat: int = 3) -> float:
    walls = []
    for _ in range(repeat):
        start = time.perf_counter()
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
        walls.append(time.perf_counter() - start)
    return statistics.median(walls)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.web_page", description=__doc__)
    parser.add_argument("--backups", type=int, default=10_000)
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--archive-mb", type=int, default=1024)
    parser.add_argument("--postgres", action="store_true", help="the database on the local PostgreSQL")
    arguments = parser.parse_args()

    from tests.conftest import free_port
    from tests.databases import fresh_postgres_database, postgres_admin_url

    with tempfile.TemporaryDirectory(prefix="labvault-bench-web-") as folder:
        home = Path(folder)
        with (fresh_postgres_database(postgres_admin_url()) if arguments.postgres
              else _nothing(f"sqlite:///{home / 'labvault.db'}")) as database_url:
            sid = seed(database_url, home / "backups", arguments.backups, arguments.archive_mb * 1024 * 1024)
            port = free_port()
            env = {key: value for key, value in os.environ.items()
                   if not key.startswith(("LABVAULT_", "PREFECT_"))}
            env.update(LABVAULT_HOME=str(home), LABVAULT_DATABASE_URL=database_url,
                       PREFECT_HOME=str(home / "prefect"), PREFECT_SERVER_ANALYTICS_ENABLED="false")
            process, link = start_web(env, port)
            try:
                client = signed_in_client(link)
                base = f"http://127.0.0.1:{port}"
                rows: dict[str, Any] = {
                    "list, page 1": latencies(client, f"{base}/backups", arguments.requests),
                    "list, page 200": latencies(client, f"{base}/backups?page=200", arguments.requests),
                    "list, search + filter": latencies(client, f"{base}/backups?q=nightly%2099&status=completed",
                                                       arguments.requests),
                    "detail": latencies(client, f"{base}/backups/{sid}", arguments.requests),
                }
                archive = home / "backups" / "bench-lab" / f"{sid}.zip"
                cookie = "; ".join(f"{name}={value}" for name, value in client.cookies.items())
                cat = timed(["cat", str(archive)])
                curl_file = timed(["curl", "-sf", "-o", "/dev/null", archive.as_uri()])
                curl = timed(["curl", "-sf", "-o", "/dev/null", "-H", f"Cookie: {cookie}",
                              f"{base}/backups/{sid}/download"])
                size_mb = archive.stat().st_size / 1e6
                rows["download 1 GB (curl)"] = {"wall_s": round(curl, 2), "mb_per_s": round(size_mb / curl),
                                                "vs_cat": round(cat / curl, 2),
                                                "vs_curl_file": round(curl_file / curl, 2)}
                rows["cat 1 GB > /dev/null"] = {"wall_s": round(cat, 2), "mb_per_s": round(size_mb / cat)}
                rows["curl file:// 1 GB"] = {"wall_s": round(curl_file, 2), "mb_per_s": round(size_mb / curl_file)}
            finally:
                process.terminate()
                process.wait(timeout=30)
    report = {"database": "postgresql" if arguments.postgres else "sqlite", "backups": arguments.backups,
              "requests": arguments.requests, "cases": rows}
    for name, row in rows.items():
        print(f"  {name:<26} {json.dumps(row)}")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(report, indent=2) + "\n")


class _nothing:
    """A context manager yielding its value (the SQLite URL needs no set-up or clean-up)."""

    def __init__(self, value: str) -> None:
        self.value = value

    def __enter__(self) -> str:
        return self.value

    def __exit__(self, *exc_info: object) -> None:
        return None


if __name__ == "__main__":
    main()
