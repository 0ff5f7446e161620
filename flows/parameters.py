"""Flow parameters as the Prefect UI's run form shows them: titles, descriptions, bounds.

Bounds go in `Annotated[..., Field(...)]` and titles/descriptions in the default `Field(...)`:
the one spelling that keeps both in Prefect's parameter schema (see PREFECT-NOTES.md).
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

OrganizationSid = Annotated[str, Field(min_length=1, max_length=64)]
BackupSid = Annotated[str, Field(min_length=1, max_length=64)]
BackupName = Annotated[str, Field(min_length=1, max_length=255)]
Email = Annotated[str, Field(min_length=3, max_length=320)]
Description = Annotated[str, Field(max_length=5000)]
RetentionDays = Annotated[int | None, Field(ge=1, le=3650)]
Minutes = Annotated[int, Field(ge=0, le=10080)]
Tries = Annotated[int, Field(ge=1, le=10)]

ORGANIZATION = Field(..., title="Organization", description="Sid of the organization to back up.")
BACKUP = Field(..., title="Backup", description="Sid of the backup (see `labvault backup list`).")
NAME = Field(..., title="Name", description="A short name for the backup, shown in listings.")
REQUESTED_BY = Field(
    ..., title="Requested by",
    description="Email of an admin of the organization; the notice email goes there.",
)
DESCRIPTION = Field("", title="Description", description="Optional longer text to remember it by.")
RETENTION = Field(
    None, title="Retention (days)",
    description="Days the backup is kept after it completes; empty: LABVAULT_RETENTION_DAYS.",
)
