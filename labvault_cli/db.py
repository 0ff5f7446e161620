"""`labvault db …`: the labvault database schema."""

from __future__ import annotations

import typer

from labvault.db.engine import upgrade_schema
from labvault_cli.context import labvault_database_url, load_settings
from labvault_cli.errors import user_errors
from labvault_cli.terminal import stdout

app = typer.Typer(help="The labvault database schema.", no_args_is_help=True)


@app.command("upgrade")
def db_upgrade() -> None:
    """Create or upgrade the database schema (Alembic migrations)."""
    settings = load_settings()
    with user_errors():
        upgrade_schema(labvault_database_url(settings))
    stdout.print("Database schema is up to date.")
