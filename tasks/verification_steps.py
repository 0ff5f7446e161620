"""Tasks of the periodic verification: one round over the due archives, then telling people."""

from __future__ import annotations

from datetime import timedelta

from prefect import get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE

from labvault import backups, reverification
from labvault.archive.rules import ArchiveLimits
from labvault.catalog import BackupDetails, get_backup
from labvault.errors import LabvaultError
from labvault.notification import verification_failed_notice
from tasks import context
from tasks.retries import RETRY_TRANSIENT


@task(name="verify-due-backups", cache_policy=NO_CACHE, **RETRY_TRANSIENT)
def verify_due(older_than_days: int, max_gigabytes: int) -> reverification.VerificationRound:
    """Check the archives whose last check is oldest, within the byte budget."""
    settings = context.settings()
    with context.sessions()() as session:
        result = reverification.verify_due_backups(
            session, context.backups_storage(), older_than=timedelta(days=older_than_days),
            byte_budget=max_gigabytes * 10**9, limits=ArchiveLimits.with_max_total(settings.archive_max_bytes))
    logger = get_run_logger()
    logger.info("Verification: %d archives match their manifest, %d do not, %d bytes read, %d left "
                "for the next round", len(result.matched), len(result.failed), result.bytes_read,
                result.left_for_later)
    for sid, problem in result.failed.items():
        logger.error("Backup %s no longer matches its manifest: %s", sid, problem)
    return result


@task(name="tell-admins-of-failed-checks", cache_policy=NO_CACHE)
def tell_admins(result: reverification.VerificationRound) -> None:
    """Email every admin of each organization whose archive failed its check."""
    settings = context.settings()
    logger = get_run_logger()
    for sid, problem in result.failed.items():
        with context.sessions()() as session:
            backup = get_backup(session, sid)
            details = BackupDetails.of(backup)
            admins = backups.admin_emails(session, backup.organization_sid)
        notice = verification_failed_notice(details, problem, [*admins, *settings.notify_emails],
                                            settings.public_url)
        try:
            context.notifier(logger).send(notice)
        except LabvaultError as exc:
            logger.warning("Backup %s: the failed-check notice was not sent: %s", sid, exc)


@task(name="report-verification", cache_policy=NO_CACHE)
def report(result: reverification.VerificationRound) -> None:
    """A markdown artifact of the round."""
    lines = ["# Periodic verification", "",
             f"{len(result.matched)} archives match their manifest, {len(result.failed)} do not; "
             f"{result.bytes_read} bytes read; {result.left_for_later} due archives left for the next round.", ""]
    if result.failed:
        lines += ["## No longer matching", ""] + [f"- `{sid}`: {problem}" for sid, problem in result.failed.items()]
    create_markdown_artifact("\n".join(lines), key="backup-verification",
                             description="What the last verify-backups run found")
