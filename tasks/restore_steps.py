"""The restore flow's task: verify an archive, then restore it into a target, all or nothing."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from prefect import get_run_logger, task
from prefect.artifacts import create_table_artifact
from prefect.cache_policies import NO_CACHE

from labvault.archive_sources import archive_opener
from labvault.database import session_factory, upgrade_schema
from labvault.restore import MergePolicy, restore_archive
from labvault.storage import storage_for
from tasks import context


@task(name="restore-archive", cache_policy=NO_CACHE)
def restore(source: str, to_database_url: str, to_files_url: str, organization_sid: str | None,
            merge: MergePolicy | None) -> dict[str, Any]:
    """Verify the archive and restore it into the target database (schema by migration) and
    files store; refuses a non-empty target unless `merge` says how."""
    logger = get_run_logger()
    with context.sessions()() as session:
        open_source, label = archive_opener(source, session, context.backups_storage())
    upgrade_schema(to_database_url)
    files = storage_for(to_files_url, setting="target files URL")
    with session_factory(to_database_url)() as target:
        report = restore_archive(open_source, label=label, session=target, files_storage=files,
                                 organization_sid=organization_sid, merge=merge)
    logger.info("Restored %s: organization %s, %d versions, %d files (%d bytes), %d records, "
                "%d skipped", label, report.organization_sid, report.versions, report.files,
                report.bytes, report.records, report.skipped)
    result = asdict(report)
    create_table_artifact([{"field": k, "value": str(v)} for k, v in result.items()],
                          key="restore-report", description=f"Restore of {label}")
    return result
