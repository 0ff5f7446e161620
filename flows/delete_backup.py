"""delete-backup: remove one backup's archive and take it out of every listing."""

from __future__ import annotations

from typing import Any

from prefect import flow

from tasks.lifecycle_steps import delete_backup as delete


@flow(name="delete-backup")
def delete_backup(backup_sid: str, requested_by: str) -> dict[str, Any]:
    """Delete a backup (not one In Progress) on behalf of an admin of its organization.

    Args:
        backup_sid: The backup to delete.
        requested_by: Email of an admin of the backup's organization.
    """
    return delete(backup_sid, requested_by)
