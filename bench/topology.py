"""The production topology (PostgreSQL API server, services on Redis, process workers) measured:

- throughput: backups per minute of one `backup-all-organizations` fan-out over 20 small
  organizations, with one worker and with three (each `--limit 3`), and the CPU seconds the
  workers and their flow-run processes used (on a 2-core machine the CPU count bounds the ratio);
- Prefect's own cost: an empty organization's create-backup run (Running to Completed, from the
  API) on this topology and on the SQLite server, against the same backup made without Prefect.

    python -m bench.topology      # prints one JSON object; Redis database 12 is flushed
"""

from __future__ import annotations

import json
import os
import resource
import statistics
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

REDIS_DB = 12
SMALL = [f"org-{number:02d}" for number in range(1, 20)]
EMPTY = "org-empty"  # with SMALL, the fan-out's 20 organizations
RUNS = 3


def seed(database_url: str, files_url: str) -> None:
    from labvault.db.engine import session_factory, upgrade_schema
    from labvault.storage.from_url import storage_for
    from tests.factories import make_organization

    upgrade_schema(database_url)
    files = storage_for(files_url, setting="files")
    with session_factory(database_url)() as session:
        for sid in SMALL:
            make_organization(session, files, sid=sid, records=2, file_names=["a.txt", "b.bin"])
        make_organization(session, files, sid=EMPTY, records=1, versions_per_record=0, file_names=[])


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def fan_out(server: Any, workers: int) -> dict[str, float]:
    """One fan-out with `workers` workers: backups per minute and the workers' CPU seconds."""
    from tests.e2e.test_deployments import FINAL, run_deployment_as_the_ui_does, wait_for_state
    from tests.e2e.test_topology import start_workers, stop_workers

    cpu = children_cpu()
    started = start_workers(server, [f"bench-{workers}-{n}" for n in range(workers)])
    try:
        began = time.perf_counter()
        run = run_deployment_as_the_ui_does("backup-all-organizations/backup-all-organizations",
                                            {"name_template": f"Bench {workers} {{time}}"})
        finished = wait_for_state(run.id, FINAL, timeout=3600)
        seconds = time.perf_counter() - began
    finally:
        stop_workers(started)
    assert finished.state.is_completed(), finished.state
    organizations = len(SMALL) + 1
    return {"seconds": round(seconds, 1), "backups_per_minute": round(organizations * 60 / seconds, 2),
            "worker_cpu_seconds": round(children_cpu() - cpu, 1)}


def empty_backup(server: Any) -> float:
    """Median seconds an empty organization's create-backup run spends Running (API times)."""
    from prefect.client.orchestration import get_client

    from tests.e2e.test_deployments import FINAL, run_deployment_as_the_ui_does, wait_for_state
    from tests.e2e.test_topology import start_workers, stop_workers

    workers = start_workers(server, ["bench-empty"])
    seconds = []
    try:
        for _ in range(RUNS):
            run = run_deployment_as_the_ui_does("create-backup/create-backup", {
                "organization_sid": EMPTY, "name": "empty", "requested_by": f"admin@{EMPTY}.example",
                "require_approval": False})
            assert wait_for_state(run.id, FINAL, timeout=600).state.is_completed()
            with get_client(sync_client=True) as client:
                done = client.read_flow_run(run.id)
            seconds.append((done.end_time - done.start_time).total_seconds())
    finally:
        stop_workers(workers)
    return statistics.median(seconds)


def without_prefect(database_url: str, files_url: str, backups_url: str) -> float:
    from bench.case import labvault_backup

    seconds = []
    for _ in range(RUNS):
        began = time.perf_counter()
        labvault_backup(database_url, files_url, backups_url, EMPTY, requested_by=f"admin@{EMPTY}.example")
        seconds.append(time.perf_counter() - began)
    return statistics.median(seconds)


@contextmanager
def sqlite_server(home: Path) -> Iterator[Any]:
    """Prefect's default server (SQLite, services in the same process), the pool deployed."""
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from tests.e2e.conftest import PrefectServer, client_env, running_server, server_env
    from tests.e2e.test_topology import POOL
    from tests.services import free_port

    (home / "logs").mkdir(parents=True)
    port = free_port()
    url = f"http://127.0.0.1:{port}/api"
    env = client_env(url, home / "clients")
    with running_server(url, server_env(env, port, home / "server"), home / "logs" / "server.log"), \
            temporary_settings({PREFECT_API_URL: url}):
        server = PrefectServer(url, env, home / "logs")
        server.deploy(POOL)
        yield server


def progress(label: str, value: Any) -> Any:
    """Print a figure as soon as it is measured (a later failure keeps it), and pass it on."""
    print(f"# {label}: {value}", flush=True)
    return value


def main() -> dict[str, Any]:
    from tests.databases import fresh_postgres_database, postgres_admin_url
    from tests.e2e.test_topology import production_server, reachable_redis

    work = Path(tempfile.mkdtemp(prefix="labvault-bench-topology-"))
    redis = reachable_redis(REDIS_DB)
    redis.flushdb()
    admin = postgres_admin_url()
    with fresh_postgres_database(admin) as prefect_db, fresh_postgres_database(admin) as labvault_db:
        os.environ.update({"LABVAULT_HOME": str(work / "labvault"), "LABVAULT_DATABASE_URL": labvault_db})
        files_url, backups_url = str(work / "labvault" / "files"), str(work / "labvault" / "backups")
        seed(labvault_db, files_url)
        with production_server(work / "production", prefect_db, REDIS_DB) as server:
            one = progress("one worker", fan_out(server, 1))
            three = progress("three workers", fan_out(server, 3))
            topology_empty = progress("empty backup run on the topology, s", empty_backup(server))
        with sqlite_server(work / "sqlite") as server:
            sqlite_empty = progress("empty backup run on the SQLite server, s", empty_backup(server))
        domain = without_prefect(labvault_db, files_url, backups_url)
    redis.flushdb()
    return {
        "machine_cpus": os.cpu_count(), "organizations": len(SMALL) + 1,
        "one_worker": one, "three_workers": three,
        "throughput_ratio_3_to_1": round(three["backups_per_minute"] / one["backups_per_minute"], 2),
        "empty_backup_run_seconds": {"topology": round(topology_empty, 2), "sqlite_server": round(sqlite_empty, 2),
                                     "without_prefect": round(domain, 3)},
        "prefect_share_of_empty_backup": {
            "topology": round(1 - domain / topology_empty, 3),
            "sqlite_server": round(1 - domain / sqlite_empty, 3)},
    }


if __name__ == "__main__":
    print(json.dumps(main(), indent=2))
