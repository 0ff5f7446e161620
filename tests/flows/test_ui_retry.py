"""The Prefect UI's Retry on a failed create-backup run: same flow run, same backup, Completed.

The flow is served as a deployment in a subprocess (as a data engineer's `serve` or a worker
would run it); the failed run is retried with `prefect flow-run retry`, which sets the same flow
run back to AwaitingRetry exactly as the UI's Retry button does.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from prefect.client.orchestration import get_client
from prefect.deployments import run_deployment
from prefect.settings import PREFECT_API_URL
from sqlalchemy import select

from labvault.db.models import Backup, BackupStatus

ROOT = Path(__file__).parents[2]
SERVE = "from flows.create_backup import create_backup; create_backup.serve(name='ui-retry-test')"


def wait_for_final_state(flow_run_id, timeout: float = 180):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with get_client(sync_client=True) as client:
            flow_run = client.read_flow_run(flow_run_id)
        if flow_run.state and flow_run.state.is_final():
            return flow_run
        time.sleep(0.5)
    raise AssertionError(f"flow run {flow_run_id} did not finish in {timeout} s")


def backup_once_settled(sessions, seconds: float = 30) -> Backup:  # type: ignore[no-untyped-def]
    """The only backup row, once it has left In Progress (or the deadline has passed)."""
    deadline = time.monotonic() + seconds
    while True:
        with sessions() as session:
            backup = session.scalar(select(Backup))
        if backup.status is not BackupStatus.IN_PROGRESS or time.monotonic() > deadline:
            return backup
        time.sleep(0.2)


def test_retrying_the_failed_run_completes_the_same_backup(sessions, files, organization, tmp_path) -> None:  # type: ignore[no-untyped-def]
    env = {**os.environ, "PREFECT_API_URL": PREFECT_API_URL.value(),
           "PREFECT_RUNNER_POLL_FREQUENCY": "1"}
    log = (tmp_path / "serve.log").open("wb")
    server = subprocess.Popen([sys.executable, "-c", SERVE], cwd=ROOT, env=env, stdout=log,
                              stderr=subprocess.STDOUT)
    try:
        row, data = next(iter(organization.files.values()))
        files.delete(row.storage_key)
        parameters = {"organization_sid": organization.sid, "name": "From the UI",
                      "requested_by": organization.admin_email}
        deadline = time.monotonic() + 90
        while True:
            try:
                flow_run = run_deployment("create-backup/ui-retry-test", parameters=parameters,
                                          timeout=0)
                break
            except Exception:  # the deployment is not registered yet
                if time.monotonic() > deadline or server.poll() is not None:
                    raise
                time.sleep(0.5)
        failed = wait_for_final_state(flow_run.id)
        assert failed.state.is_failed(), (tmp_path / "serve.log").read_text()
        # The failure hook records Error just after the run turns Failed: give it a moment.
        backup = backup_once_settled(sessions)
        assert (backup.status, backup.flow_run_id) == (BackupStatus.ERROR, str(flow_run.id))
        assert row.uid in backup.error

        pending = files.open_write(row.storage_key)
        pending.write(data)
        pending.commit()
        subprocess.run([str(Path(sys.executable).with_name("prefect")), "flow-run", "retry",
                        str(flow_run.id)], env=env, check=True, capture_output=True)
        retried = wait_for_final_state(flow_run.id)
        assert retried.state.is_completed(), (tmp_path / "serve.log").read_text()
        assert retried.run_count >= 2

        with sessions() as session:
            backups = session.scalars(select(Backup)).all()
        assert len(backups) == 1, "the retry made a second backup row"
        assert (backups[0].sid, backups[0].status, backups[0].error) == (
            backup.sid, BackupStatus.COMPLETED, None)
        assert Path(backups[0].file_path).exists()
    finally:
        server.terminate()
        server.wait(timeout=30)
        log.close()
