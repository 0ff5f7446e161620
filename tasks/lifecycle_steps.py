"""Tasks of a backup's later life: deletion and the scheduled expiry."""

from __future__ import annotations

from dataclasses import asdict
from datetime import timedelta
from typing import Any

from prefect import get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE

from labvault import deletion, expiry
from labvault.catalog import BackupDetails
from tasks import context
from tasks.retries import RETRY_TRANSIENT
from tasks.run_tags import requesting_door, tag_flow_run


@task(name="delete-backup", cache_policy=NO_CACHE, **RETRY_TRANSIENT)
def delete_backup(sid: str, requested_by: str) -> dict[str, Any]:
    """Remove one backup's archive and take it out of every listing (admins only)."""
    with context.sessions()() as session:
        backup = deletion.delete_backup(session, context.backups_storage(), sid, requested_by,
                                        door=requesting_door())
        details = asdict(BackupDetails.of(backup))
    tag_flow_run(details["organization_sid"])
    get_run_logger().info("Backup %s deleted by %s", sid, requested_by)
    return details


@task(name="expire-backups", cache_policy=NO_CACHE, **RETRY_TRANSIENT)
def expire(stale_after_minutes: int | None = None) -> expiry.ExpiryReport:
    """Delete expired backups, reap stale runs, remove orphaned partial archives, settle
    restores killed midway."""
    settings = context.settings()
    minutes = stale_after_minutes or settings.stale_after_minutes
    with context.sessions()() as session:
        report = expiry.expire_backups(session, context.backups_storage(),
                                       stale_after=timedelta(minutes=minutes), files_storage=context.files())
    logger = get_run_logger()
    logger.info("Expiry: %d deleted, %d expired but kept, %d reaped to Error, %d archives of failed "
                "backups removed, %d orphaned partials removed, %d interrupted restores settled",
                len(report.deleted), len(report.kept), len(report.reaped),
                len(report.failed_archives_removed), len(report.orphans_removed),
                len(report.restores_settled))
    for label, items in (("deleted", report.deleted), ("kept", report.kept), ("reaped", report.reaped),
                         ("archive of failed backup removed", report.failed_archives_removed),
                         ("orphan removed", report.orphans_removed),
                         ("restore settled", report.restores_settled)):
        for item in items:
            logger.info("Expiry: %s %s", label, item)
    return report


@task(name="report-expiry", cache_policy=NO_CACHE)
def report_expiry(report: expiry.ExpiryReport) -> None:
    """A markdown artifact listing what the expiry run did."""
    lines = ["# Backup expiry", ""]
    if report.did_nothing and not report.kept:
        lines.append("Nothing to do: no backup expired, none stale, no archive of a failed backup, "
                     "no orphaned partial archive.")
    for title, items in (("Deleted (expired)", report.deleted),
                         ("Expired but kept (legal hold, Object Lock)", report.kept),
                         ("Reaped to Error (stale)", report.reaped),
                         ("Archives of failed backups removed", report.failed_archives_removed),
                         ("Orphaned partial archives removed", report.orphans_removed),
                         ("Interrupted restores settled", report.restores_settled)):
        if items:
            lines += [f"## {title}", ""] + [f"- `{item}`" for item in items] + [""]
    create_markdown_artifact("\n".join(lines), key="backup-expiry",
                             description="What the last expire-backups run did")
