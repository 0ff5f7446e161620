"""Who may write a backup now, across every worker: Prefect global concurrency limits.

A backup's work (start or restart, then build) runs holding one slot of its organization's
limit (1: two backups of one organization never overlap, a second one waits instead of being
refused) and, when `LABVAULT_MAX_PARALLEL_BACKUPS` is set, one slot of its backups store's limit.
The database's own guard (one In Progress backup per organization, a unique index) stays beside
them: it still holds if a lease was lost or a slot was released by hand.

The limits are made here when missing (and set back to the wanted size when someone changed it),
so `strict=True` can refuse to run on a server where they could not be made.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from contextlib import contextmanager

from prefect.client.orchestration import get_client
from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate, GlobalConcurrencyLimitUpdate
from prefect.concurrency.sync import concurrency
from prefect.exceptions import ObjectAlreadyExists, ObjectNotFound
from prefect.settings import PREFECT_API_URL

from labvault.catalog import get_backup
from labvault.settings import Settings
from labvault.url_secrets import masked_url
from tasks import context

# A killed worker's slot is free again this long after its last renewal (renewed every 3/4 of
# it while the backup runs), plus the server's lease repossessor loop (15 s by default).
LEASE_SECONDS = 60
_READABLE = re.compile(r"[A-Za-z0-9._-]{1,64}")


def organization_limit(organization_sid: str) -> str:
    """`labvault-org-<sid>`; a sid Prefect would not take as a name is hashed instead."""
    readable = _READABLE.fullmatch(organization_sid)
    return f"labvault-org-{organization_sid if readable else _digest(organization_sid)}"


def store_limit(backups_url: str) -> str:
    """`labvault-store-<hash>`: the store's URL, whatever credentials it carries, never shows."""
    return f"labvault-store-{_digest(masked_url(backups_url))}"


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def wanted_limits(organization_sid: str, settings: Settings) -> dict[str, int]:
    """Limit name → slots, for a backup of the organization under these settings."""
    limits = {organization_limit(organization_sid): 1}
    if settings.max_parallel_backups:
        limits[store_limit(settings.backups_url)] = settings.max_parallel_backups
    return limits


def ensure_limits(limits: dict[str, int]) -> None:
    """Make each limit exist with its size; idempotent, and safe when two runs race to make it."""
    with get_client(sync_client=True) as client:
        for name, slots in limits.items():
            try:
                found = client.read_global_concurrency_limit_by_name(name)
            except ObjectNotFound:
                try:
                    client.create_global_concurrency_limit(GlobalConcurrencyLimitCreate(name=name, limit=slots))
                except ObjectAlreadyExists:  # another run made it first
                    pass
                continue
            if found.limit != slots or not found.active:
                client.update_global_concurrency_limit(
                    name, GlobalConcurrencyLimitUpdate(limit=slots, active=True))


def slots_apply(settings: Settings) -> bool:
    """`LABVAULT_BACKUP_SLOTS`: on, off, or (auto) when PREFECT_API_URL names a server. Prefect's
    temporary server runs no services, so no lease repossessor would free a killed run's slot."""
    if settings.backup_slots == "auto":
        return bool(PREFECT_API_URL.value())
    return settings.backup_slots == "on"


@contextmanager
def backup_slots(organization_sid: str) -> Iterator[None]:
    """Hold the organization's slot (and the store's) while the block runs; wait for them first.

    A lost lease renewal (a server restarting) does not kill the backup: the database guard
    still keeps a second backup of the organization out."""
    settings = context.settings()
    if not slots_apply(settings):
        yield
        return
    limits = wanted_limits(organization_sid, settings)
    ensure_limits(limits)
    with concurrency(list(limits), occupy=1, strict=True, lease_duration=LEASE_SECONDS,
                     raise_on_lease_renewal_failure=False):
        yield


def organization_of(backup_sid: str) -> str:
    """The organization a backup belongs to (a retry knows only the backup's sid)."""
    with context.sessions()() as session:
        return get_backup(session, backup_sid).organization_sid
