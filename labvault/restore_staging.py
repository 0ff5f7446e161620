"""Where a restore keeps new bytes until its rows commit, and how a killed restore is cleaned up.

A restore writes every blob under `.restore/<run id>/blobs/<key>` in the target files store,
beside whatever the target already holds; only after the database transaction commits (with a
`restore_runs` row for the run) are the staged blobs moved onto their keys. So until the commit
no existing byte changes, and a failure, Ctrl-C or a full disk only has staging to throw away.

A restore killed with SIGKILL leaves its staging behind. `recover_staging`, run at the start of
every restore and by `expire`, settles each run it finds: a run whose row committed gets its
blobs moved into place (the commit already promised them), a run that never committed is
removed once its owner is known to be dead (on this host: its process is gone; from another
host: its marker, renewed every minute while it writes, is older than the stale window), and a
live run is left alone. A clean-up removes the marker first, and a restore whose marker is gone
does not commit.
"""

from __future__ import annotations

import json
import os
import socket
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from labvault.db.models import RestoreRun
from labvault.errors import LabvaultError
from labvault.storage.store import PARTIAL_SUFFIX, PendingWrite, Storage
from labvault.utc import as_utc, utcnow

STAGING_PREFIX = ".restore"
_OWNER = "owner.json"
_BLOBS = "blobs"
_MAX_OWNER_BYTES = 4096
BEAT_SECONDS = 60  # how often a running restore renews its owner marker


class Staging:
    """One restore's staging area in a files store."""

    def __init__(self, storage: Storage, run_id: str | None = None) -> None:
        self.storage = storage
        self.run_id = run_id or uuid.uuid4().hex
        self.prefix = f"{STAGING_PREFIX}/{self.run_id}"
        self._last_beat = 0.0

    def begin(self) -> None:
        """Say who owns this staging before anything else is written to it."""
        self._beat()

    def _beat(self) -> None:
        """The owner marker, written anew: a restore on another host counts as alive while
        its marker is younger than the stale window."""
        owner = {"host": socket.gethostname(), "pid": os.getpid(), "beat": utcnow().isoformat()}
        pending = self.storage.open_write(f"{self.prefix}/{_OWNER}")
        pending.write(json.dumps(owner).encode())
        pending.commit()
        self._last_beat = time.monotonic()

    def intact(self) -> bool:
        """Whether no clean-up has started on this staging (it removes the marker first)."""
        return self.storage.exists(f"{self.prefix}/{_OWNER}")

    def open_write(self, key: str, size: int) -> PendingWrite:
        """A pending write of the blob that will go to `key` once the rows commit."""
        if time.monotonic() - self._last_beat > BEAT_SECONDS:
            self._beat()
        return self.storage.open_write(f"{self.prefix}/{_BLOBS}/{key}", size)

    def promote(self) -> None:
        """Move every staged blob onto its key, then drop the staging. Idempotent: a blob
        already moved (by a recovery racing this) is simply not there."""
        blobs = f"{self.prefix}/{_BLOBS}/"
        for staged in self.storage.list(f"{self.prefix}/{_BLOBS}"):
            if staged.endswith(PARTIAL_SUFFIX):
                continue
            try:
                self.storage.move(staged, staged.removeprefix(blobs))
            except FileNotFoundError:
                pass
        self.discard()

    def discard(self) -> None:
        """Remove everything staged, unfinished uploads included; the owner marker first, so
        the restore, if it still runs, sees its staging is going (`intact`) and does not commit."""
        self.storage.delete(f"{self.prefix}/{_OWNER}")
        for partial in self.storage.list_partials():
            if partial.key.startswith(self.prefix + "/"):
                self.storage.discard_partial(partial)
        for key in self.storage.list(self.prefix):
            self.storage.delete(key)

    def owner_is_gone(self, now: datetime, stale_after: timedelta) -> bool:
        """Whether the restore that staged here can no longer be running: on this host, its
        process is gone; from another host, its marker has not been renewed within the window."""
        try:
            with self.storage.open_read(f"{self.prefix}/{_OWNER}") as marker:
                owner = json.loads(marker.read(_MAX_OWNER_BYTES))
            beat = as_utc(datetime.fromisoformat(owner["beat"]))
            host, pid = owner["host"], int(owner["pid"])
        except (FileNotFoundError, ValueError, KeyError, TypeError):
            keys = self.storage.list(self.prefix)
            return not keys or all(self.storage.modified(key) < now - stale_after for key in keys)
        if host == socket.gethostname():
            return not _process_alive(pid)
        return beat < now - stale_after


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
    failed: list[str] = field(default_factory=list)  # "<run>: why", left for the next try


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
        try:
            if session.get(RestoreRun, run_id) is not None:
                staging.promote()
                recovered.promoted.append(run_id)
            elif staging.owner_is_gone(now, stale_after):
                staging.discard()
                recovered.discarded.append(run_id)
        except (OSError, LabvaultError) as exc:  # one stuck staging must not stop every restore
            recovered.failed.append(f"{run_id}: {' '.join(str(exc).split())[:300]}")
    return recovered
