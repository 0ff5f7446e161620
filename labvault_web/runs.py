"""Starting the flows the page asks for: the same flows the CLI and the Prefect UI run.

On the embedded default (no PREFECT_API_URL) the web process runs them itself, in a small pool
of background threads, so no other process is needed. With a Prefect server configured, it starts
runs of the deployments (`create-backup/create-backup`, …), which a worker of the pool executes,
as the UI's Run button does. Either way the runs are tagged `via:web` for the audit trail.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from labvault import catalog
from labvault.backups import BackupRequest
from labvault.db.models import Backup, BackupStatus
from labvault.errors import LabvaultError, TransientError
from labvault.utc import utcnow

DEPLOYMENTS = {"create": "create-backup/create-backup", "retry": "retry-backup/retry-backup",
               "delete": "delete-backup/delete-backup"}


class FlowRuns:
    """Starts create, retry and delete runs for the page: `in_process` runs the flows here;
    None decides by PREFECT_API_URL (none set: the embedded default)."""

    def __init__(self, sessions: sessionmaker[Session], *, in_process: bool | None = None,
                 threads: int = 2) -> None:
        self._sessions = sessions
        self._in_process = in_process
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="labvault-web-flow")

    def _here(self) -> bool:
        from prefect.settings import PREFECT_API_URL

        return self._in_process if self._in_process is not None else not PREFECT_API_URL.value()

    def shutdown(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=False)

    def _start(self, kind: str, flow: Callable[..., Any], parameters: dict[str, Any]) -> Future[Any] | str:
        """A future of the flow's final state here, or the id of the deployment's flow run."""
        from prefect import tags
        from prefect.deployments import run_deployment

        from tasks.run_tags import door_tag

        if self._here():
            def run() -> Any:
                with tags(door_tag("web")):
                    return flow(**parameters, return_state=True)
            return self._pool.submit(run)
        flow_run = run_deployment(DEPLOYMENTS[kind], parameters=parameters, timeout=0,
                                  tags=[door_tag("web")])
        return str(flow_run.id)

    def create(self, request: BackupRequest, wait_seconds: float = 30) -> Backup | None:
        """Start a create-backup run; the backup it makes once its row exists (None if no worker
        has started it yet). A run refused before any row raises its reason."""
        from flows.create_backup import create_backup

        since = utcnow()
        started = self._start("create", create_backup, {
            "organization_sid": request.organization_sid, "name": request.name,
            "description": request.description, "requested_by": request.requested_by,
            "require_approval": False})

        def find(session: Session) -> Backup | None:
            if isinstance(started, str):
                return catalog.backup_for_flow_run(session, started)
            return catalog.newest_started_since(session, request.organization_sid,
                                                request.requested_by, since)
        return self._wait_for_row(find, started, wait_seconds)

    def retry(self, sid: str, requested_by: str, wait_seconds: float = 30) -> None:
        """Start a retry-backup run and wait until it has taken the backup out of Error (a worker
        of a pool may take longer: then the page shows the backup as it is)."""
        from flows.retry_backup import retry_backup

        started = self._start("retry", retry_backup, {"backup_sid": sid, "requested_by": requested_by})

        def find(session: Session) -> Backup | None:
            backup = session.get(Backup, sid)
            return backup if backup is not None and backup.status is not BackupStatus.ERROR else None
        self._wait_for_row(find, started, wait_seconds)

    def delete(self, sid: str, requested_by: str, wait_seconds: float = 120) -> None:
        """Delete through the delete-backup flow and wait for it: the page shows the outcome."""
        from flows.delete_backup import delete_backup

        started = self._start("delete", delete_backup, {"backup_sid": sid, "requested_by": requested_by})
        if isinstance(started, str):
            from prefect.flow_runs import wait_for_flow_run

            state = wait_for_flow_run(started, timeout=int(wait_seconds)).state
        else:
            state = started.result(timeout=wait_seconds)
        if state is None or not state.is_completed():
            raise LabvaultError(state.message if state is not None else "the delete run did not finish")

    def _wait_for_row(self, find: Callable[[Session], Backup | None], started: Future[Any] | str,
                      wait_seconds: float) -> Backup | None:
        deadline = time.monotonic() + wait_seconds
        while time.monotonic() < deadline:
            with self._sessions() as session:
                backup = find(session)
                if backup is not None:
                    session.expunge(backup)
                    return backup
            if isinstance(started, Future) and started.done():
                state = started.result()
                state.result()  # a run refused before any row raises its reason here
                raise TransientError("the run ended without starting the backup")
            time.sleep(0.2)
        if isinstance(started, Future):
            raise TransientError("the backup did not start within "
                                 f"{wait_seconds:.0f} s; look at the list again in a moment")
        return None
