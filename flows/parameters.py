"""Flow parameters as the Prefect UI's run form shows them: titles, descriptions, bounds.

Bounds go in `Annotated[..., Field(...)]` and titles/descriptions in the default made by
`parameter(...)`: the one spelling that keeps all three in Prefect's parameter schema (see
PREFECT-NOTES.md).
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field


def parameter(default: Any, title: str, description: str) -> Any:
    """A flow parameter's default, with the title and description the run form shows.

    Prefect titles every parameter after its argument name (`organization_sid`), whatever the
    field says; a title in `json_schema_extra` is merged over that one."""
    return Field(default, title=title, description=description, json_schema_extra={"title": title})


OrganizationSid = Annotated[str, Field(min_length=1, max_length=64)]
BackupSid = Annotated[str, Field(min_length=1, max_length=64)]
BackupName = Annotated[str, Field(min_length=1, max_length=255)]
Email = Annotated[str, Field(min_length=3, max_length=320)]
Description = Annotated[str, Field(max_length=5000)]
# 0 rather than None for "the default": the run form shows a plain number field, not a
# switch between "integer" and "None".
RetentionDays = Annotated[int, Field(ge=0, le=3650)]
Minutes = Annotated[int, Field(ge=0, le=10080)]
Tries = Annotated[int, Field(ge=1, le=10)]

ORGANIZATION = parameter(..., "Organization", "Sid of the organization to back up.")
BACKUP = parameter(..., "Backup", "Sid of the backup (see `labvault backup list`).")
NAME = parameter(..., "Name", "A short name for the backup, shown in listings.")
REQUESTED_BY = parameter(..., "Requested by",
                         "Email of an admin of the organization; the notice email goes there.")
DESCRIPTION = parameter("", "Description", "Optional longer text to remember it by.")
RETENTION = parameter(0, "Retention (days)",
                      "Days the backup is kept after it completes; 0: LABVAULT_RETENTION_DAYS.")
