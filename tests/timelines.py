"""When backups ran, read from their rows: how many wrote at once."""

from __future__ import annotations

from collections.abc import Iterable

from labvault.db.models import Backup


def most_at_once(backups: Iterable[Backup]) -> int:
    """The largest number of backups whose [date_created, date_completed] overlap at one moment
    (a backup ending exactly when another starts does not overlap it)."""
    moments = []
    for backup in backups:
        assert backup.date_completed is not None, f"backup {backup.sid} never completed"
        moments += [(backup.date_created, 1), (backup.date_completed, -1)]
    running = most = 0
    for _, step in sorted(moments):  # at equal times -1 sorts first: an end frees its slot
        running += step
        most = max(most, running)
    return most
