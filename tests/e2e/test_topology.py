"""The production topology of README "Running in production", started for real and run through
a week's worth of trouble in a few minutes.

- `prefect server start --no-services` on a PostgreSQL database of its own (migrated by
  `prefect server database upgrade -y`);
- `prefect server services start` with Redis (a database number of this test's own) for
  messaging, event ordering, concurrency leases and docket;
- three process workers on the `labvault` pool, each with `--limit`; labvault's database on
  PostgreSQL, `LABVAULT_MAX_PARALLEL_BACKUPS=2`.

Slow (minutes, most of it Prefect starting flow-run processes on a small machine): select it with
`-m topology`, leave it out with `-m "not topology"`. Redis or PostgreSQL missing: a failure in CI.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any, TypeVar

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import (
    ArtifactFilter,
    ArtifactFilterKey,
    DeploymentFilter,
    DeploymentFilterName,
    FlowRunFilter,
    FlowRunFilterId,
)
from prefect.client.schemas.objects import StateType
from prefect.client.schemas.schedules import IntervalSchedule
from sqlalchemy import select
from sqlalchemy.engine import make_url

from deployments.automations import ensure_crash_silent_runs
from labvault.db.engine import session_factory, upgrade_schema
from labvault.db.models import Backup, BackupStatus
from labvault.settings import Settings, get_settings
from labvault.storage.from_url import files_store
from tests.databases import fresh_postgres_database, postgres_admin_url
from tests.e2e.conftest import BIN, PrefectServer, client_env, running_server, server_env, stop
from tests.e2e.test_deployments import FINAL, POOL, run_deployment_as_the_ui_does, wait_for_state
from tests.factories import OrganizationFixture, make_organization
from tests.services import free_port, unavailable
from tests.timelines import most_at_once

pytestmark = pytest.mark.topology

REDIS_URL = "redis://127.0.0.1:6379"
REDIS_DB = int(os.environ.get("LABVAULT_TEST_REDIS_DB", "13"))
ORGANIZATIONS = [f"org-{number:02d}" for number in range(1, 21)]
SLOW = "org-01"  # started first; one of its files is a FIFO: its backup stops mid-way, In Progress, until killed
WORKERS = ("worker-1", "worker-2", "worker-3")
HEARTBEAT_SECONDS = 30  # Prefect's minimum; a run silent for three beats is crashed
BACKUP_TASKS = 9  # a backup run's task runs, whatever the organization's size (README)
RETRY_TASKS = 8  # a retry has no estimate; restart-backup stands for start-backup
STORE_CAP = 2
T = TypeVar("T")


@dataclass
class Topology:
    server: PrefectServer
    settings: Settings
    workers: dict[str, subprocess.Popen[bytes]]
    slow: OrganizationFixture


def reachable_redis(db: int = REDIS_DB) -> Any:
    from redis import Redis

    client = Redis.from_url(f"{REDIS_URL}/{db}", socket_connect_timeout=5)
    try:
        client.ping()
    except Exception as exc:  # any reason Redis cannot be used is the same verdict
        unavailable(f"Redis at {REDIS_URL} is unreachable: {exc}", "Redis")
    return client


def redis_settings(redis_db: int) -> dict[str, str]:
    """Prefect's server and services on Redis (prefect-redis), in this test's database number."""
    return {"PREFECT_MESSAGING_BROKER": "prefect_redis.messaging",
            "PREFECT_MESSAGING_CACHE": "prefect_redis.messaging",
            "PREFECT_SERVER_EVENTS_CAUSAL_ORDERING": "prefect_redis.ordering",
            "PREFECT_SERVER_CONCURRENCY_LEASE_STORAGE": "prefect_redis.lease_storage",
            "PREFECT_REDIS_MESSAGING_HOST": "127.0.0.1", "PREFECT_REDIS_MESSAGING_PORT": "6379",
            "PREFECT_REDIS_MESSAGING_DB": str(redis_db),
            "PREFECT_SERVER_DOCKET_URL": f"{REDIS_URL}/{redis_db}",
            # a run waiting for a slot asks again after at most 2 s, not 30 (minutes matter here)
            "PREFECT_SERVER_CONCURRENCY_MAXIMUM_CONCURRENCY_SLOT_WAIT_SECONDS": "2"}


def make_organizations(settings: Settings) -> OrganizationFixture:
    """Twenty small organizations; the slow one's first file (2.1 MB) is swapped for a FIFO
    nobody writes to, so its backup blocks reading it (heartbeat beating) until its process dies."""
    upgrade_schema(settings.database_url)
    files = files_store(settings)
    with session_factory(settings.database_url)() as session:
        made = {sid: make_organization(session, files, sid=sid, records=2, file_names=["a.txt", "b.bin"])
                for sid in ORGANIZATIONS}
    path = blocking_file(settings, made[SLOW])
    path.unlink()
    os.mkfifo(path)
    return made[SLOW]


def blocking_file(settings: Settings, organization: OrganizationFixture) -> Path:
    row, _ = next(item for item in organization.files.values() if item[0].name == "a.txt")
    return Path(settings.files_url) / row.storage_key


@contextmanager
def production_server(home: Path, prefect_db: str, redis_db: int) -> Iterator[PrefectServer]:
    """The API server without services on `prefect_db`, the services process on Redis database
    `redis_db`, the pool and prefect.yaml's deployments, the crash automation; no worker yet."""
    from prefect.settings import PREFECT_API_URL, temporary_settings

    (home / "logs").mkdir(parents=True, exist_ok=True)
    port = free_port()
    url = f"http://127.0.0.1:{port}/api"
    env = {**client_env(url, home / "clients"), "PREFECT_FLOWS_HEARTBEAT_FREQUENCY": str(HEARTBEAT_SECONDS)}
    served = {**server_env(env, port, home / "server"), **redis_settings(redis_db),
              "PREFECT_API_DATABASE_CONNECTION_URL": make_url(prefect_db).set(
                  drivername="postgresql+asyncpg").render_as_string(hide_password=False)}
    server = PrefectServer(url, env, home / "logs")
    migrated = subprocess.run([str(BIN / "prefect"), "server", "database", "upgrade", "-y"], env=served,
                              capture_output=True, text=True, timeout=300, check=False)
    assert migrated.returncode == 0, migrated.stdout + migrated.stderr
    with running_server(url, served, home / "logs" / "api.log", "--no-services"), \
            temporary_settings({PREFECT_API_URL: url}), (home / "logs" / "services.log").open("wb") as log:
        services = subprocess.Popen([str(BIN / "prefect"), "server", "services", "start"], env=served,
                                    stdout=log, stderr=subprocess.STDOUT)
        try:
            server.deploy(POOL)
            ensure_crash_silent_runs(HEARTBEAT_SECONDS)
            yield server
        finally:
            stop(services)


def start_workers(server: PrefectServer, names: Iterable[str]) -> dict[str, subprocess.Popen[bytes]]:
    """Process workers on the pool, each with --limit 3, each in a process group of its own."""
    return {name: server.start(name, str(BIN / "prefect"), "worker", "start", "--pool", POOL, "--type",
                               "process", "--name", name, "--limit", "3", own_group=True)
            for name in names}


def stop_workers(workers: dict[str, subprocess.Popen[bytes]]) -> None:
    for worker in workers.values():
        if worker.poll() is None:
            os.killpg(worker.pid, signal.SIGTERM)
            worker.wait(timeout=60)


def runs_outlive_their_worker() -> None:
    """The pool's runs do not write to their worker's pipe (`stream_output` off; their logs still
    reach the API), so the other runs of the worker killed below live on, as on another machine,
    and only the killed run's backup is lost."""
    from prefect.client.schemas.actions import WorkPoolUpdate

    with get_client(sync_client=True) as client:
        template = client.read_work_pool(POOL).base_job_template
        template["variables"]["properties"]["stream_output"]["default"] = False
        client.update_work_pool(POOL, WorkPoolUpdate(base_job_template=template))


@pytest.fixture(scope="module")
def topology(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Topology]:
    home = tmp_path_factory.mktemp("topology")
    redis = reachable_redis()
    redis.flushdb()
    admin = postgres_admin_url()
    with fresh_postgres_database(admin) as prefect_db, fresh_postgres_database(admin) as labvault_db, \
            pytest.MonkeyPatch.context() as patch:
        for name in [name for name in os.environ if name.startswith("LABVAULT_")]:
            patch.delenv(name)
        patch.setenv("LABVAULT_HOME", str(home / "labvault"))
        patch.setenv("LABVAULT_DATABASE_URL", labvault_db)
        patch.setenv("LABVAULT_MAX_PARALLEL_BACKUPS", str(STORE_CAP))
        settings = get_settings()
        slow = make_organizations(settings)
        with production_server(home, prefect_db, REDIS_DB) as server:
            runs_outlive_their_worker()
            workers = start_workers(server, WORKERS)
            try:
                yield Topology(server, settings, workers, slow)
            finally:
                stop_workers(workers)
    redis.flushdb()


def eventually(check: Callable[[], T | None], what: str, timeout: float) -> T:
    """`check()`'s first truthy answer, asked every second."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(1)
    raise AssertionError(f"{what}: not within {timeout:.0f} s")


def backups_of(settings: Settings, *criteria: Any) -> list[Backup]:
    with session_factory(settings.database_url)() as session:
        return list(session.scalars(select(Backup).where(*criteria)).all())


def runs_of(deployment: str) -> list[Any]:
    with get_client(sync_client=True) as client:
        return client.read_flow_runs(deployment_filter=DeploymentFilter(
            name=DeploymentFilterName(any_=[deployment])))


def task_run_states(flow_run_id: Any) -> list[StateType]:
    with get_client(sync_client=True) as client:
        runs = client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])))
    return [run.state.type for run in runs if run.state]


def recorded(flow_run_id: Any, count: int) -> list[StateType] | None:
    """The run's task-run states once the services recorded `count` (they come as events)."""
    states = task_run_states(flow_run_id)
    return states if len(states) >= count else None


def summary_rows() -> dict[str, str]:
    """The fan-out's `backup-all-organizations` table: organization → state of its run."""
    with get_client(sync_client=True) as client:
        [artifact] = client.read_artifacts(artifact_filter=ArtifactFilter(
            key=ArtifactFilterKey(any_=["backup-all-organizations"])))
    rows = json.loads(artifact.data) if isinstance(artifact.data, str) else artifact.data
    return {row["organization"]: row["state"] for row in rows}


def kill_the_worker_of_the_slow_backup(topology: Topology) -> tuple[Backup, str]:
    """SIGKILL, mid-backup, the worker running the slow organization's backup and that run's
    process (its machine dying); returns the backup and the worker's name."""
    [backup] = eventually(lambda: backups_of(topology.settings, Backup.organization_sid == SLOW,
                                             Backup.status == BackupStatus.IN_PROGRESS),
                          "the slow organization's backup started", timeout=300)
    with get_client(sync_client=True) as client:
        run = eventually(lambda: (found := client.read_flow_run(backup.flow_run_id)).infrastructure_pid
                         and "prefect.worker.name" in found.labels and found, "its run's process", 60)
    worker = str(run.labels["prefect.worker.name"])
    os.kill(topology.workers[worker].pid, signal.SIGKILL)
    os.kill(int(str(run.infrastructure_pid).rsplit(":", 1)[-1]), signal.SIGKILL)
    topology.workers[worker].wait(timeout=10)
    return backup, worker


def test_the_production_topology(topology: Topology) -> None:
    settings, admin = topology.settings, topology.slow.admin_email
    fan_out = run_deployment_as_the_ui_does("backup-all-organizations/backup-all-organizations",
                                            {"name_template": "Topology {date}"})
    twin = run_deployment_as_the_ui_does("create-backup/create-backup", {  # org-02 twice at once
        "organization_sid": "org-02", "name": "Twin", "requested_by": "admin@org-02.example",
        "require_approval": False})

    # 2. a worker dies mid-backup: the run is crashed (no heartbeat), the backup reaped to Error
    killed, dead_worker = kill_the_worker_of_the_slow_backup(topology)
    with get_client(sync_client=True) as client:  # the reaper: the scheduler service starts its runs
        expire = client.read_deployment_by_name("expire-backups/expire-backups")
        client.create_deployment_schedules(expire.id, [(IntervalSchedule(interval=timedelta(minutes=1)), True)],
                                           parameters={"stale_after_minutes": 1}, slug="every-minute")
    finished = wait_for_state(fan_out.id, FINAL, timeout=420)
    assert finished.state.type == StateType.FAILED, finished.state
    assert finished.state.message.endswith(f"backups did not complete for: {SLOW}"), finished.state.message
    summary = summary_rows()
    assert summary == {**dict.fromkeys(ORGANIZATIONS, "Completed"), SLOW: "Crashed"}
    [reaped] = eventually(lambda: backups_of(settings, Backup.sid == killed.sid, Backup.status == BackupStatus.ERROR),
                          "the killed backup reaped by the scheduled expire-backups", timeout=180)
    assert reaped.error.startswith("stale: no progress since"), reaped.error

    # ... and a retry from the API completes it under the same sid
    fifo = blocking_file(settings, topology.slow)
    fifo.unlink()
    _, data = next(item for item in topology.slow.files.values() if item[0].name == "a.txt")
    fifo.write_bytes(data)
    retry = run_deployment_as_the_ui_does("retry-backup/retry-backup",
                                          {"backup_sid": killed.sid, "requested_by": admin})
    assert wait_for_state(retry.id, FINAL, timeout=240).state.type == StateType.COMPLETED
    [retried] = backups_of(settings, Backup.organization_sid == SLOW)
    assert (retried.sid, retried.status) == (killed.sid, BackupStatus.COMPLETED)

    # 1. the fan-out: every backup Completed, spread over the three workers, one org at a time
    assert wait_for_state(twin.id, FINAL).state.type == StateType.COMPLETED
    made = backups_of(settings)
    assert sorted(b.organization_sid for b in made) == sorted([*ORGANIZATIONS, "org-02"])
    assert {b.status for b in made} == {BackupStatus.COMPLETED}
    for sid in ORGANIZATIONS:
        assert most_at_once(b for b in made if b.organization_sid == sid) == 1, sid
    assert most_at_once(made) <= STORE_CAP
    backup_runs = runs_of("create-backup")
    workers = {str(run.labels.get("prefect.worker.name")) for run in backup_runs}
    assert workers == set(WORKERS), workers
    assert dead_worker in workers

    # 3. the scheduler service started expire-backups runs, and a worker completed them
    scheduled = [run for run in runs_of("expire-backups") if run.auto_scheduled]
    assert StateType.COMPLETED in {run.state.type for run in scheduled if run.state}

    # 4. no lost events: every finished backup run has its nine task runs, all Completed
    expected = {run.id: BACKUP_TASKS for run in backup_runs if run.state.type == StateType.COMPLETED}
    expected |= {run.id: RETRY_TASKS for run in runs_of("retry-backup")}
    assert len(expected) == len(ORGANIZATIONS) + 1  # 19 of the fan-out, the twin, the retry
    for run_id, count in expected.items():
        states = eventually(lambda: recorded(run_id, count), f"the task runs of {run_id}", timeout=60)
        assert states == [StateType.COMPLETED] * count, (run_id, states)
