"""The options and arguments several commands share, spelled and explained once."""

from __future__ import annotations

from typing import Annotated

import typer

JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
YesOption = Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation.")]
SidArgument = Annotated[str, typer.Argument(help="The backup's sid.")]
BackupAdminOption = Annotated[str, typer.Option("--as", help="Email of an admin of the backup's organization.")]
ArchiveSourceArgument = Annotated[str, typer.Argument(
    help="Backup sid, path of a zip, or URL (s3://…, https://…).")]
