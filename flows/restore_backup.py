"""restore-backup: an archive back into an empty database and files store, verified first."""

from typing import Any, Literal

from prefect import flow
from pydantic import Field

from labvault.restore import MergePolicy
from tasks.restore_steps import restore


@flow(name="restore-backup")
def restore_backup(
    source: str = Field(..., title="Source",
                        description="Backup sid, path of a zip, or URL such as s3://bucket/key.zip."),
    to_database_url: str = Field(
        ..., title="Target database",
        description="SQLAlchemy URL of the database to restore into, without a password: Prefect "
                    "keeps parameters in plain text, so a URL with one is refused."),
    to_files_url: str = Field(..., title="Target files store",
                              description="Folder or fsspec URL the files are restored under."),
    organization_sid: str | None = Field(
        None, title="Organization", description="Refuse the archive unless it holds this organization."),
    merge: Literal["skip", "overwrite"] | None = Field(
        None, title="Merge",
        description="For a target that is not empty: skip keeps existing rows and blobs, overwrite "
                    "replaces them; empty refuses a non-empty target."),
    to_database_password_secret: str | None = Field(
        None, title="Target database password (Secret block)",
        description="Name of a Prefect Secret block holding the target database's password; "
                    "without one, PostgreSQL reads PGPASSWORD or ~/.pgpass on the worker."),
) -> dict[str, Any]:
    """Verify an archive, then restore its organization, records, versions and files."""
    return restore(source, to_database_url, to_files_url, organization_sid,
                   MergePolicy(merge) if merge else None, to_database_password_secret)
