"""`labvault backup …`: estimate, create, list, show, delete, hold, release, retry and verify backups."""

from __future__ import annotations

import sys
from dataclasses import asdict
from typing import Annotated, Any

import typer
from rich.table import Table

from labvault import backups, catalog, deletion
from labvault.backup_text import estimate_cost_text, size_text
from labvault.backups import BackupRequest
from labvault.catalog import BackupDetails
from labvault.errors import LabvaultError
from labvault.pricing import Pricing, estimate_backup
from labvault.settings import Settings
from labvault_cli.context import (
    backups_store_with_credentials,
    files_store_with_credentials,
    labvault_database_url,
    load_settings,
    run_flow,
    sessions,
)
from labvault_cli.errors import fail, user_errors
from labvault_cli.options import ArchiveSourceArgument, BackupAdminOption, JsonOption, SidArgument, YesOption
from labvault_cli.progress import backup_progress_bar
from labvault_cli.terminal import confirm, print_details, print_estimate, print_json, stdout, table_of

app = typer.Typer(help="Create, find, retry, hold and delete backups.", no_args_is_help=True)


def backup_of_run(settings: Settings, state: Any) -> BackupDetails:
    """The backup a create or retry run worked on; a run refused before any row re-raises."""
    with sessions(settings)() as session:
        backup = catalog.backup_for_flow_run(session, str(state.state_details.flow_run_id))
        if backup is None:
            state.result()  # raises the refusal
            raise LabvaultError("the flow run ended without a backup")
        return BackupDetails.of(backup, backups_store_with_credentials(settings))


def report_backup(details: BackupDetails, settings: Settings, as_json: bool) -> None:
    if as_json:
        print_json(asdict(details))
    else:
        print_details(details, settings.currency)
    if details.status != "Completed":
        raise fail(f"backup {details.sid} failed: {details.error}")


@app.command("estimate")
def backup_estimate(
    org: Annotated[str, typer.Option("--org", help="Organization sid.")],
    as_json: JsonOption = False,
) -> None:
    """Show the size and cost a backup of the organization would have now."""
    settings = load_settings()
    with user_errors(), sessions(settings)() as session:
        estimate = estimate_backup(session, org, Pricing.of(settings))
    if as_json:
        print_json(asdict(estimate))
    else:
        print_estimate(estimate)


def create_backup_now(settings: Settings, request: BackupRequest, *, progress: bool) -> BackupDetails:
    """Run the create-backup flow for an already checked and confirmed request."""
    from flows.create_backup import create_backup  # Prefect loads only when a flow runs

    with backup_progress_bar(labvault_database_url(settings), request.organization_sid,
                             request.requested_by, enabled=progress and sys.stderr.isatty()):
        state = run_flow(create_backup, organization_sid=request.organization_sid,
                         name=request.name, requested_by=request.requested_by,
                         description=request.description)
    return backup_of_run(settings, state)


@app.command("create")
def backup_create(
    org: Annotated[str, typer.Option("--org", help="Organization sid to back up.")],
    name: Annotated[str, typer.Option("--name", help="Short name of the backup.")],
    requested_by: Annotated[str, typer.Option("--as", help="Email of an admin of the organization.")],
    description: Annotated[str, typer.Option("--description", help="Longer text to remember it by.")] = "",
    yes: YesOption = False,
    as_json: JsonOption = False,
) -> None:
    """Back up one organization now: show the cost, ask, then run the create-backup flow."""
    settings = load_settings()
    with user_errors():
        with sessions(settings)() as session:
            request = backups.check_request(session, BackupRequest(org, name, description, requested_by))
            estimate = estimate_backup(session, org, Pricing.of(settings))
        files_store_with_credentials(settings)  # a bad store is refused here, before the backup row exists
        backups_store_with_credentials(settings).check_writable()
        if not as_json:
            print_estimate(estimate)
        confirm(f"Create this backup for {estimate_cost_text(estimate)}?", yes)
        details = create_backup_now(settings, request, progress=not as_json)
    report_backup(details, settings, as_json)


@app.command("list")
def backup_list(
    search: Annotated[str | None, typer.Option("--search", help="Keyword in sid, name or description.")] = None,
    status: Annotated[str, typer.Option("--status", help="all, completed, in-progress or error.")] = "all",
    org: Annotated[str | None, typer.Option("--org", help="Only this organization's backups.")] = None,
    as_json: JsonOption = False,
) -> None:
    """List backups, newest first."""
    settings = load_settings()
    with user_errors(), sessions(settings)() as session:
        rows = [BackupDetails.of(b) for b in catalog.list_backups(
            session, search=search, status=catalog.parse_status_filter(status),
            organization_sid=org)]
    if as_json:
        print_json([asdict(row) for row in rows])
        return
    if not rows:
        filtered = search is not None or status != "all" or org is not None
        stdout.print("No backups match." if filtered else "No backups yet.")
        return
    table = Table("sid", "name", "status", "versions", "files", "size", "created", "expires", "checked")
    for row in rows:
        checked = f"{row.verified_at[:10]} {'ok' if row.verified_ok else 'FAILED'}" if row.verified_at else "—"
        # the status column is narrow: "(legal hold)" there, the full words in `backup show`
        table.add_row(row.sid, row.name, row.status + (" (legal hold)" if row.legal_hold else ""),
                      str(row.versions or 0), str(row.files or 0),
                      size_text(row.file_size), row.date_created[:19],
                      (row.date_expired or "—")[:19], checked)
    stdout.print(table)


@app.command("show")
def backup_show(sid: SidArgument, as_json: JsonOption = False) -> None:
    """Show every field of one backup, with its progress while it runs."""
    settings = load_settings()
    with user_errors(), sessions(settings)() as session:
        details = BackupDetails.of(catalog.get_backup(session, sid), backups_store_with_credentials(settings))
    if as_json:
        print_json(asdict(details))
    else:
        print_details(details, settings.currency)


@app.command("delete")
def backup_delete(
    sid: SidArgument,
    requested_by: BackupAdminOption,
    yes: YesOption = False,
    as_json: JsonOption = False,
) -> None:
    """Delete a backup: its archive leaves storage and the backup leaves every listing."""
    from flows.delete_backup import delete_backup

    settings = load_settings()
    with user_errors():
        with sessions(settings)() as session:
            store = backups_store_with_credentials(settings)
            backup = deletion.check_delete(session, sid, requested_by, store)
            name = backup.name
        store.check_writable()  # the archive can be removed there
        confirm(f"Delete backup {sid} ({name}) and its archive?", yes)
        run_flow(delete_backup, backup_sid=sid, requested_by=requested_by).result()
    if as_json:
        print_json({"sid": sid, "deleted": True})
    else:
        stdout.print(f"Backup {sid} ({name}) deleted.")


def _legal_hold(sid: str, requested_by: str, *, on: bool, as_json: bool) -> None:
    from labvault.legal_hold import set_legal_hold

    settings = load_settings()
    with user_errors(), sessions(settings)() as session:
        backup = set_legal_hold(session, backups_store_with_credentials(settings), sid, requested_by,
                                on=on, door="cli")
        name = backup.name
    if as_json:
        print_json({"sid": sid, "legal_hold": on})
    else:
        stdout.print(f"Backup {sid} ({name}) " + ("is on legal hold: expiry keeps it and delete refuses it."
                                                  if on else "is released from legal hold."), soft_wrap=True)


@app.command("hold")
def backup_hold(
    sid: SidArgument,
    requested_by: BackupAdminOption,
    as_json: JsonOption = False,
) -> None:
    """Put a Completed backup on legal hold: kept past its expiry, not deletable until released
    (on S3 with Object Lock, its archive is held too)."""
    _legal_hold(sid, requested_by, on=True, as_json=as_json)


@app.command("release")
def backup_release(
    sid: SidArgument,
    requested_by: BackupAdminOption,
    as_json: JsonOption = False,
) -> None:
    """Release a backup from legal hold: expiry and delete treat it as any other again."""
    _legal_hold(sid, requested_by, on=False, as_json=as_json)


@app.command("retry")
def backup_retry(
    sid: SidArgument,
    requested_by: BackupAdminOption,
    as_json: JsonOption = False,
) -> None:
    """Make a backup that ended in Error again, under the same sid, for an admin of its organization."""
    from flows.retry_backup import retry_backup

    settings = load_settings()
    with user_errors():
        with sessions(settings)() as session:
            organization = backups.check_retry(session, sid, requested_by).organization_sid
        # refused here, before the backup runs again
        backups_store_with_credentials(settings).check_writable()
        with backup_progress_bar(labvault_database_url(settings), organization, requested_by.strip(),
                                 enabled=not as_json and sys.stderr.isatty()):
            state = run_flow(retry_backup, backup_sid=sid, requested_by=requested_by)
        details = backup_of_run(settings, state)
    report_backup(details, settings, as_json)


@app.command("verify")
def backup_verify(
    source: ArchiveSourceArgument,
    as_json: JsonOption = False,
) -> None:
    """Read an archive once and check every entry against its manifest."""
    from labvault.archive.rules import ArchiveLimits
    from labvault.archive.verify import verify_archive
    from labvault.archive_sources import archive_opener

    settings = load_settings()
    with user_errors():
        with sessions(settings)() as session:
            open_source, label = archive_opener(source, session, backups_store_with_credentials(settings),
                                                max_bytes=settings.archive_max_bytes)
        with open_source() as stream:
            report = verify_archive(stream, label=label,
                                    limits=ArchiveLimits.with_max_total(settings.archive_max_bytes))
    if as_json:
        print_json({**asdict(report), "ok": report.ok})
    else:
        stdout.print(table_of([
            ("archive", report.source), ("organization", report.organization_sid),
            ("backup", report.backup_sid), ("entries", report.entries),
            ("versions", report.versions), ("files", report.files),
            ("bytes checked", report.total_bytes),
            ("result", "OK: every entry matches the manifest" if report.ok
             else f"{len(report.problems)} problem(s)"),
        ]))
    for problem in report.problems:
        typer.echo(f"error: {problem}", err=True)
    if not report.ok:
        raise typer.Exit(code=1)
