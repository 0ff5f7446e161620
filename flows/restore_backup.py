"""restore-backup: an archive back into an empty database and files store, verified first."""

from typing import Any, Literal

from prefect import flow

from flows.outcome import fails_with_reason
from flows.parameters import parameter
from labvault.restore import MergePolicy
from tasks.restore_steps import restore


@flow(name="restore-backup", flow_run_name="restore {source}")
@fails_with_reason
def restore_backup(
    source: str = parameter(..., "Source",
                            "Backup sid, path of a zip, or URL such as s3://bucket/key.zip. A presigned "
                            "https link is refused here (its signature would be stored with the "
                            "run): give it to `labvault restore` on the command line."),
    to_database_url: str = parameter(
        ..., "Target database",
        "SQLAlchemy URL of the database to restore into, without a password: Prefect keeps "
        "parameters in plain text, so a URL with one is refused."),
    to_files_url: str = parameter(..., "Target files store",
                                  "Folder or fsspec URL the files are restored under."),
    organization_sid: str | None = parameter(
        None, "Organization", "Refuse the archive unless it holds this organization."),
    merge: Literal["skip", "overwrite"] | None = parameter(
        None, "Merge",
        "For a target that is not empty: skip keeps existing rows and blobs, overwrite replaces "
        "them; empty refuses a non-empty target."),
    to_database_password_secret: str | None = parameter(
        None, "Target database password (Secret block)",
        "Name of a Prefect Secret block holding the target database's password; without one, "
        "PostgreSQL reads PGPASSWORD or ~/.pgpass on the worker."),
) -> dict[str, Any]:
    """Verify an archive, then restore its organization, records, versions and files."""
    return restore(source, to_database_url, to_files_url, organization_sid,
                   MergePolicy(merge) if merge else None, to_database_password_secret)
