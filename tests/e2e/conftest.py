"""A real Prefect server, a process worker and the project's deployments, for end-to-end tests.

Nothing here points at a server this session did not start: `prefect server start` runs on a
free loopback port with its own PREFECT_HOME, and every client is told its URL.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from labvault.db.engine import session_factory, upgrade_schema
from labvault.settings import Settings, get_settings
from labvault.storage.from_url import files_store
from tests.conftest import free_port
from tests.factories import make_organization

ROOT = Path(__file__).parents[2]
BIN = Path(sys.executable).parent


@dataclass
class PrefectServer:
    url: str
    env: dict[str, str]
    logs: Path

    def run(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        """A `prefect` CLI command against this server, from the repository root."""
        return subprocess.run([str(BIN / "prefect"), *args], cwd=ROOT, env=self.env, text=True,
                              capture_output=True, timeout=timeout, check=False)

    def start(self, name: str, *command: str, own_group: bool = False) -> subprocess.Popen[bytes]:
        """A process logging to `<name>.log`; `own_group`: it and its children can be killed
        together (os.killpg), as when their machine dies."""
        log = (self.logs / f"{name}.log").open("wb")
        return subprocess.Popen(list(command), cwd=ROOT, env=self.env, stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=own_group)

    def deploy(self, pool: str) -> None:
        """The pool from the process job template, its Kubernetes twin, and `prefect deploy --all`."""
        for name, kind in ((pool, "process"), (f"{pool}-k8s", "kubernetes")):
            created = self.run("work-pool", "create", name, "--type", kind,
                               "--base-job-template", f"deployments/job_templates/{kind}.json")
            assert created.returncode == 0, created.stdout + created.stderr
        deployed = self.run("--no-prompt", "deploy", "--all", timeout=300)
        assert deployed.returncode == 0, deployed.stdout + deployed.stderr


def stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=10)


@pytest.fixture(scope="module")
def e2e_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("e2e")


@pytest.fixture(scope="module")
def e2e_settings(e2e_home: Path) -> Iterator[Settings]:
    """labvault's settings for the test process and every worker: SQLite and folders in tmp."""
    with pytest.MonkeyPatch.context() as patch:
        for name in list(os.environ):
            if name.startswith("LABVAULT_") and not name.startswith("LABVAULT_TEST_"):
                patch.delenv(name)
        patch.setenv("LABVAULT_HOME", str(e2e_home / "labvault"))
        settings = get_settings()
        upgrade_schema(settings.database_url)
        with session_factory(settings.database_url)() as session:
            for sid in ("lab-a", "lab-b", "lab-c"):
                make_organization(session, files_store(settings), sid=sid, file_names=["a.txt", "b.bin"])
        yield settings


def client_env(url: str, home: Path) -> dict[str, str]:
    """What every Prefect client of a test server gets: its URL, a home, quick polling."""
    return {**os.environ, "PREFECT_API_URL": url, "PREFECT_HOME": str(home),
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "PREFECT_WORKER_QUERY_SECONDS": "1",
            "PREFECT_RUNNER_POLL_FREQUENCY": "1", "PWD": str(ROOT)}


def server_env(env: dict[str, str], port: int, home: Path) -> dict[str, str]:
    """A server's environment: a home of its own, the port, the scheduler looking every 5 s."""
    served = {**env, "PREFECT_HOME": str(home), "PREFECT_SERVER_SERVICES_SCHEDULER_LOOP_SECONDS": "5",
              "PREFECT_SERVER_API_PORT": str(port), "PREFECT_SERVER_API_HOST": "127.0.0.1"}
    served.pop("PREFECT_API_URL")
    return served


@contextmanager
def running_server(url: str, env: dict[str, str], log_path: Path, *options: str) -> Iterator[None]:
    """`prefect server start` until /api/health answers; stopped when the block ends."""
    port = url.rsplit(":", 1)[1].split("/")[0]
    with log_path.open("wb") as log:
        process = subprocess.Popen([str(BIN / "prefect"), "server", "start", "--host", "127.0.0.1",
                                    "--port", port, *options], env=env, stdout=log,
                                   stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 90
            while True:
                try:
                    if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"prefect server did not start: {log_path.read_text()}")
                time.sleep(0.3)
            yield
        finally:
            stop(process)


@pytest.fixture(scope="module")
def prefect_server(e2e_home: Path, e2e_settings: Settings) -> Iterator[PrefectServer]:
    from prefect.settings import PREFECT_API_URL, temporary_settings

    port = free_port()
    url = f"http://127.0.0.1:{port}/api"
    logs = e2e_home / "logs"
    logs.mkdir()
    env = client_env(url, e2e_home / "prefect-clients")
    with running_server(url, server_env(env, port, e2e_home / "prefect-server"), logs / "server.log"), \
            temporary_settings({PREFECT_API_URL: url}):
        yield PrefectServer(url, env, logs)
