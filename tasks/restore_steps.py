"""The restore flow's task: verify an archive, then restore it into a target, all or nothing."""

from __future__ import annotations

from dataclasses import asdict
from datetime import timedelta
from typing import Any

from prefect import get_run_logger, task
from prefect.artifacts import create_table_artifact
from prefect.cache_policies import NO_CACHE

from labvault.archive.rules import ArchiveLimits
from labvault.archive_sources import archive_opener, refuse_signed_link
from labvault.db.engine import check_connection, session_factory, upgrade_schema
from labvault.restore import MergePolicy, restore_archive
from labvault.storage.from_url import storage_for
from labvault.url_secrets import STORE_CREDENTIALS, database_url, files_url, masked_url, refuse_credentials
from tasks import context


@task(name="restore-archive", cache_policy=NO_CACHE)
def restore(source: str, to_database_url: str, to_files_url: str, organization_sid: str | None,
            merge: MergePolicy | None, to_database_password_secret: str | None = None) -> dict[str, Any]:
    """Verify the archive and restore it into the target database (schema by migration) and
    files store; refuses a non-empty target unless `merge` says how.

    URLs arrive without passwords (refused here too: the flow may be run from the UI); the target
    database's password, if any, comes from the Secret block and lives only in this task's memory.
    """
    logger = get_run_logger()
    refuse_credentials(source, name="source", instead=STORE_CREDENTIALS)
    refuse_signed_link(source, name="source")
    target = database_url(to_database_url, name="to_database_url",
                          secret_option="to_database_password_secret")
    files = storage_for(files_url(to_files_url, name="to_files_url"), setting="to_files_url",
                        s3_credentials=context.s3_credentials(context.settings()))
    if to_database_password_secret:
        target = target.set(password=context.secret_password(to_database_password_secret,
                                                              name="to_database_password_secret"))
    target_url = target.render_as_string(hide_password=False)
    check_connection(target_url, name="to_database_url")
    with context.sessions()() as session:
        open_source, label = archive_opener(source, session, context.backups_storage(),
                                            max_bytes=context.settings().archive_max_bytes)
    logger.info("Restoring %s into %s and %s", label, masked_url(target), masked_url(to_files_url))
    with session_factory(target_url)() as target_session:  # connects on first use, after verifying
        settings = context.settings()
        report = restore_archive(open_source, label=label, session=target_session, files_storage=files,
                                 organization_sid=organization_sid, merge=merge,
                                 limits=ArchiveLimits.with_max_total(settings.archive_max_bytes),
                                 stale_after=timedelta(minutes=settings.stale_after_minutes),
                                 prepare_target=lambda: upgrade_schema(target_url))
    logger.info("Restored %s: organization %s, %d versions, %d files (%d bytes), %d records, "
                "%d skipped", label, report.organization_sid, report.versions, report.files,
                report.bytes, report.records, report.skipped)
    result = asdict(report)
    rows = {**result, "to_database": masked_url(target), "to_files": masked_url(to_files_url)}
    create_table_artifact([{"field": k, "value": str(v)} for k, v in rows.items()],
                          key="restore-report", description=f"Restore of {label}")
    return result
