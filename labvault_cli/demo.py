"""`labvault demo`: the schema, the demo organization and one backup of it."""

from __future__ import annotations

import typer

from labvault.backups import BackupRequest
from labvault.db.engine import upgrade_schema
from labvault_cli.backup import create_backup_now
from labvault_cli.context import files_store_with_credentials, labvault_database_url, load_settings, sessions
from labvault_cli.errors import user_errors
from labvault_cli.terminal import print_details, stdout


def demo() -> None:
    """Create the schema, load the demo organization and back it up once."""
    from labvault.demo import load_demo

    settings = load_settings()
    with user_errors():
        upgrade_schema(labvault_database_url(settings))
        with sessions(settings)() as session:
            loaded = load_demo(session, files_store_with_credentials(settings))
        stdout.print(f"Demo organization {loaded.sid!r} {'loaded' if loaded.created else 'already there'}; "
                     f"backing it up as {loaded.admin_email} …")
        details = create_backup_now(settings, BackupRequest(loaded.sid, "Demo backup",
                                                            "Made by labvault demo",
                                                            loaded.admin_email), progress=True)
    print_details(details, settings.currency)
    if details.status != "Completed":
        raise typer.Exit(code=1)
    stdout.print(f"\nThe zip is at: {details.file_path}")
