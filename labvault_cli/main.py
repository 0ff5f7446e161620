"""`labvault`: the command-line door into the same flows the Prefect UI runs.

Commands stay thin: they parse options, call the domain or a flow, and print a table or JSON.
User mistakes end as one line on stderr and exit code 1, never a traceback.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table
from sqlalchemy.exc import SQLAlchemyError

from labvault import backups
from labvault.backups import BackupDetails, BackupRequest
from labvault.database import session_factory, upgrade_schema
from labvault.errors import LabvaultError
from labvault.settings import Settings, get_settings
from labvault_cli.progress import backup_progress_bar

app = typer.Typer(help="labvault: backups of lab-data platforms, run as Prefect flows.",
                  no_args_is_help=True, pretty_exceptions_enable=False)
db_app = typer.Typer(help="The labvault database schema.", no_args_is_help=True)
backup_app = typer.Typer(help="Create, list and inspect backups.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(backup_app, name="backup")

stdout = Console()

JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]


def fail(message: str) -> typer.Exit:
    """Print `error: message` as one unwrapped line on stderr; raise the returned exit."""
    typer.echo(f"error: {' '.join(message.split())}", err=True)
    return typer.Exit(code=1)


@contextmanager
def user_errors() -> Iterator[None]:
    """Turn labvault and database errors into one line on stderr and exit code 1."""
    try:
        yield
    except LabvaultError as exc:
        raise fail(str(exc)) from None
    except SQLAlchemyError as exc:
        reason = str(getattr(exc, "orig", None) or exc)
        raise fail(f"database: {reason}; check LABVAULT_DATABASE_URL and run `labvault db upgrade`") from None


def _settings() -> Settings:
    with user_errors():
        return get_settings()


def _print_json(value: Any) -> None:
    sys.stdout.write(json.dumps(value, ensure_ascii=False, indent=2) + "\n")


def human_size(size: int | None) -> str:
    if size is None:
        return "—"
    value = float(size)
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if value < 1000 or unit == "TB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    raise AssertionError("unreachable")


def print_details(details: BackupDetails) -> None:
    table = Table(show_header=False, box=None, pad_edge=False)
    table.add_column(style="bold")
    table.add_column(overflow="fold")
    size = f"{human_size(details.file_size)} ({details.file_size} bytes)" if details.file_size is not None else "—"
    for label, value in [
        ("sid", details.sid), ("name", details.name), ("description", details.description or "—"),
        ("status", details.status), ("versions", details.versions), ("files", details.files),
        ("file size", size), ("file path", details.file_path or "—"),
        ("date created", details.date_created), ("date expired", details.date_expired or "—"),
        ("requested by", details.requested_by or "—"), ("flow run", details.flow_run_id or "—"),
    ] + ([("error", details.error)] if details.error else []):
        table.add_row(label, "—" if value is None else str(value))
    stdout.print(table)


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Create or upgrade the database schema (Alembic migrations)."""
    settings = _settings()
    with user_errors():
        upgrade_schema(settings.database_url)
    stdout.print("Database schema is up to date.")


def run_create_backup(request: BackupRequest, *, show_progress: bool) -> BackupDetails:
    """Run the create-backup flow in this process and return the backup as it ended."""
    from flows.create_backup import create_backup  # Prefect loads only when a flow runs

    database_url = get_settings().database_url
    with backup_progress_bar(database_url, request.organization_sid, request.requested_by,
                             enabled=show_progress and sys.stderr.isatty()):
        state = create_backup(organization_sid=request.organization_sid, name=request.name,
                              requested_by=request.requested_by, description=request.description,
                              return_state=True)
    with session_factory(database_url)() as session:
        backup = backups.backup_for_flow_run(session, str(state.state_details.flow_run_id))
        if backup is None:  # refused before any row existed
            state.result()  # raises the refusal
            raise LabvaultError("the create-backup flow ended without a backup")
        return BackupDetails.of(backup)


@backup_app.command("create")
def backup_create(
    org: Annotated[str, typer.Option("--org", help="Organization sid to back up.")],
    name: Annotated[str, typer.Option("--name", help="Short name of the backup.")],
    requested_by: Annotated[str, typer.Option("--as", help="Email of an admin of the organization.")],
    description: Annotated[str, typer.Option("--description", help="Longer text to remember it by.")] = "",
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation.")] = False,
    as_json: JsonOption = False,
) -> None:
    """Back up one organization now, by running the create-backup flow."""
    settings = _settings()
    with user_errors():
        with session_factory(settings.database_url)() as session:
            request = backups.check_request(session, BackupRequest(org, name, description, requested_by))
        details = run_create_backup(request, show_progress=not as_json)
    if as_json:
        _print_json(asdict(details))
    else:
        print_details(details)
    if details.status != "Completed":
        raise fail(f"backup {details.sid} failed: {details.error}")


@backup_app.command("list")
def backup_list(as_json: JsonOption = False) -> None:
    """List backups, newest first."""
    settings = _settings()
    with user_errors(), session_factory(settings.database_url)() as session:
        rows = [BackupDetails.of(b) for b in backups.list_backups(session)]
    if as_json:
        _print_json([asdict(row) for row in rows])
        return
    if not rows:
        stdout.print("No backups yet.")
        return
    table = Table("sid", "name", "status", "versions", "files", "size", "created", "expires")
    for row in rows:
        table.add_row(row.sid, row.name, row.status, str(row.versions or 0), str(row.files or 0),
                      human_size(row.file_size), row.date_created[:19],
                      (row.date_expired or "—")[:19])
    stdout.print(table)


@backup_app.command("show")
def backup_show(sid: Annotated[str, typer.Argument(help="The backup's sid.")],
                as_json: JsonOption = False) -> None:
    """Show every field of one backup."""
    settings = _settings()
    with user_errors(), session_factory(settings.database_url)() as session:
        details = BackupDetails.of(backups.get_backup(session, sid))
    if as_json:
        _print_json(asdict(details))
    else:
        print_details(details)


@app.command()
def demo() -> None:
    """Create the schema, load the demo organization and back it up once."""
    from labvault.demo import load_demo
    from labvault.storage import files_store

    settings = _settings()
    with user_errors():
        upgrade_schema(settings.database_url)
        with session_factory(settings.database_url)() as session:
            loaded = load_demo(session, files_store(settings.files_url))
        stdout.print(f"Demo organization {loaded.sid!r} {'loaded' if loaded.created else 'already there'}; "
                     f"backing it up as {loaded.admin_email} …")
        details = run_create_backup(BackupRequest(loaded.sid, "Demo backup", "Made by labvault demo",
                                                  loaded.admin_email), show_progress=True)
    print_details(details)
    if details.status == "Completed":
        stdout.print(f"\nThe zip is at: {details.file_path}")
    else:
        raise typer.Exit(code=1)
