"""A running backup's sign of life, and who holds it.

The expiry flow reaps an In Progress backup whose `heartbeat_at` is older than the stale window,
so a live run must keep that column fresh through every step, however long one file, the seal or
the verification takes: `Heartbeat` beats it from a timer thread for as long as the work runs.

A backup is *held* by the run that (re)started it: its `flow_run_id` (None for a caller without
a flow run). Every write a run makes to its backup's row is conditional on the row still being
In Progress and held by that run, so a run that was reaped, or whose backup a retry took over,
can neither revive the row nor mark it Completed.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from sqlalchemy import update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from labvault.db.models import Backup, BackupStatus
from labvault.utc import utcnow

# Several beats fit in the shortest stale window (LABVAULT_STALE_AFTER_MINUTES >= 1).
BEAT_SECONDS = 15.0

logger = logging.getLogger(__name__)


def held_by(sid: str, run_id: str | None) -> tuple[Any, ...]:
    """Criteria matching backup `sid` only while it is In Progress and held by run `run_id`."""
    return (Backup.sid == sid, Backup.status == BackupStatus.IN_PROGRESS,
            Backup.flow_run_id.is_not_distinct_from(run_id))


def beat(session: Session, sid: str, run_id: str | None, **values: Any) -> bool:
    """Set `heartbeat_at` to now (and `values`) on the backup if `run_id` still holds it.

    Returns whether it did; the caller commits."""
    result = session.execute(
        update(Backup).where(*held_by(sid, run_id)).values(heartbeat_at=utcnow(), **values)
    )
    return bool(result.rowcount)


class Heartbeat:
    """Beats a backup's heartbeat every `interval` seconds while the `with` block runs.

    Each beat is its own short transaction, so it never waits on the step's session. A beat that
    finds the row no longer held by `run_id` (reaped, failed, taken over by a retry) stops the
    timer for good: a dead backup is never brought back to life. A beat the database refuses is
    logged and tried again at the next tick (a short outage should not get a live run reaped).
    """

    def __init__(self, sessions: sessionmaker[Session], sid: str, *, run_id: str | None,
                 interval: float = BEAT_SECONDS) -> None:
        self._sessions = sessions
        self._sid = sid
        self._run_id = run_id
        self._interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat_until_stopped, daemon=True,
                                        name=f"heartbeat-{sid}")

    def _beat_until_stopped(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                with self._sessions.begin() as session:
                    held = beat(session, self._sid, self._run_id)
            except SQLAlchemyError as exc:
                logger.warning("Backup %s: heartbeat not recorded (%s); trying again", self._sid, exc)
                continue
            if not held:
                logger.warning("Backup %s is no longer In Progress under this run; heartbeat stopped",
                               self._sid)
                return

    def __enter__(self) -> "Heartbeat":
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join()
