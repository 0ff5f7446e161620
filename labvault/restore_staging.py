"""Where a restore keeps new bytes until its rows commit, and how a killed restore is cleaned up.

A restore writes every blob under `.restore/<run id>/blobs/<key>` in the target files store,
beside whatever the target already holds; only after the database transaction commits (with a
`restore_runs` row for the run) are the staged blobs moved onto their keys. So until the commit
no existing byte changes, and a failure, Ctrl-C or a full disk only has staging to throw away.

A restore killed with SIGKILL leaves its staging behind. `recover_staging`, run at the start of
every restore and by `expire`, settles each run it finds: a run whose row committed gets its
blobs moved into place (the commit already promised them), a run that never committed is
removed once its owner is known to be dead (same host, process gone) or it is older than the
stale window, and a live run is left alone.
"""

from __future__ import annotations

import json
import os
import socket
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from labvault.models import RestoreRun, as_utc, utcnow
from labvault.storage import PARTIAL_SUFFIX, PendingWrite, Storage

STAGING_PREFIX = ".restore"
_OWNER = "owner.json"
_BLOBS = "blobs"
_MAX_OWNER_BYTES = 4096


class Staging:
    """One restore's staging area in a files store."""

    def __init__(self, storage: Storage, run_id: str | None = None) -> None:
        self.storage = storage
        self.run_id = run_id or uuid.uuid4().hex
        self.prefix = f"{STAGING_PREFIX}/{self.run_id}"
        self.staged = 0

    def begin(self) -> None:
        """Say who owns this staging before anything else is written to it."""
        owner = {"host": socket.gethostname(), "pid": os.getpid(), "started": utcnow().isoformat()}
        pending = self.storage.open_write(f"{self.prefix}/{_OWNER}")
        pending.write(json.dumps(owner).encode())
        pending.commit()

    def open_write(self, key: str, size: int) -> PendingWrite:
        """A pending write of the blob that will go to `key` once the rows commit."""
        self.staged += 1
        return self.storage.open_write(f"{self.prefix}/{_BLOBS}/{key}", size)

    def promote(self) -> int:
        """Move every staged blob onto its key, then drop the staging; returns how many moved.
        Idempotent: a blob already moved (by a recovery racing this) is simply not there."""
        moved = 0
        blobs = f"{self.prefix}/{_BLOBS}/"
        for staged in self.storage.list(f"{self.prefix}/{_BLOBS}"):
            if staged.endswith(PARTIAL_SUFFIX):
                continue
            try:
                self.storage.move(staged, staged.removeprefix(blobs))
                moved += 1
            except FileNotFoundError:
                pass
        self.discard()
        return moved

    def discard(self) -> None:
        """Remove everything staged, unfinished uploads included."""
        for partial in self.storage.list_partials():
            if partial.key.startswith(self.prefix + "/"):
                self.storage.discard_partial(partial)
        for key in self.storage.list(self.prefix):
            self.storage.delete(key)

    def owner_is_gone(self, now: datetime, stale_after: timedelta) -> bool:
        """Whether the restore that staged here can no longer be running."""
        try:
            with self.storage.open_read(f"{self.prefix}/{_OWNER}") as marker:
                owner = json.loads(marker.read(_MAX_OWNER_BYTES))
            started = as_utc(datetime.fromisoformat(owner["started"]))
            host, pid = owner["host"], int(owner["pid"])
        except (FileNotFoundError, ValueError, KeyError, TypeError):
            keys = self.storage.list(self.prefix)
            return not keys or all(self.storage.modified(key) < now - stale_after for key in keys)
        if started < now - stale_after:
            return True
        return host == socket.gethostname() and not _process_alive(pid)


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@dataclass
class Recovered:
    """What `recover_staging` did."""

    promoted: list[str] = field(default_factory=list)  # runs whose blobs were moved into place
    discarded: list[str] = field(default_factory=list)  # runs that never committed


def recover_staging(session: Session, storage: Storage, *, stale_after: timedelta,
                    now: datetime | None = None) -> Recovered:
    """Settle every restore staging left in `storage` by a restore into `session`'s database."""
    now = now or utcnow()
    recovered = Recovered()
    runs = sorted({key.split("/")[1] for key in storage.list(STAGING_PREFIX) if key.count("/") >= 2}
                  | {p.key.split("/")[1] for p in storage.list_partials()
                     if p.key.startswith(STAGING_PREFIX + "/") and p.key.count("/") >= 2})
    for run_id in runs:
        staging = Staging(storage, run_id)
        if session.get(RestoreRun, run_id) is not None:
            staging.promote()
            recovered.promoted.append(run_id)
        elif staging.owner_is_gone(now, stale_after):
            staging.discard()
            recovered.discarded.append(run_id)
    return recovered
