"""`labvault`: the command-line door into the same flows the Prefect UI runs.

Commands stay thin: they check the request with the domain (fast, no Prefect), run a flow or
read the database, and print a table or JSON. User mistakes end as one line on stderr and exit
code 1, never a traceback.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict
from decimal import Decimal
from types import ModuleType
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table
from sqlalchemy.exc import SQLAlchemyError
from typer.core import TyperGroup

try:  # typer 0.2x parses with its own copy of click, whose exceptions it does not re-export
    from typer._click import exceptions as click_exceptions
except ImportError:  # older typer runs on click itself
    from click import exceptions as click_exceptions  # type: ignore[no-redef]

from labvault import backups, catalog, deletion
from labvault.backups import BackupRequest
from labvault.catalog import BackupDetails
from labvault.db.engine import session_factory, upgrade_schema
from labvault.errors import LabvaultError
from labvault.pricing import Estimate, Pricing, estimate_backup
from labvault.settings import Settings, get_settings
from labvault.sizes import human_size
from labvault.storage.from_url import backups_store, files_store
from labvault.storage.s3 import S3Credentials
from labvault.storage.store import Storage
from labvault_cli.progress import backup_progress_bar

# Prefect's analytics are on unless turned off: each temporary server reports its start (and on a
# first run, or with no network, prints errors from it), and a terminal is told so on a first
# run. Off unless the user chose; read when Prefect is imported, which the commands do later.
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
if os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"].lower() in ("false", "0", "no", "off"):
    os.environ.setdefault("DO_NOT_TRACK", "1")
# The temporary server gets 20 s to start by Prefect's default, which a busy 2-core machine
# overran; 90 s unless the user chose (the CLI still waits for nothing when it starts sooner).
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "90")


class OneLineUsageErrors(TyperGroup):
    """Usage mistakes (a missing option, an unknown command, a value of the wrong type) end as
    one `error:` line and exit code 1 like every other mistake, not click's usage box and 2.
    Help asked for by giving no arguments stays help."""

    def main(self, args: Sequence[str] | None = None, prog_name: str | None = None,
             complete_var: str | None = None, standalone_mode: bool = True, **extra: Any) -> Any:
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode, **extra)
        try:
            code = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except click_exceptions.NoArgsIsHelpError as exc:  # the help is printed already
            sys.exit(exc.exit_code)
        except click_exceptions.UsageError as exc:
            where = f" (see `{exc.ctx.command_path} --help`)" if exc.ctx is not None else ""
            message = exc.format_message().strip().rstrip(".")
            raise SystemExit(fail(message[:1].lower() + message[1:] + where).exit_code) from None
        except click_exceptions.ClickException as exc:
            raise SystemExit(fail(exc.format_message()).exit_code) from None
        except typer.Abort:
            raise SystemExit(fail("aborted; nothing more was done").exit_code) from None
        sys.exit(code if isinstance(code, int) else 0)


app = typer.Typer(name="labvault", help="labvault: backups of lab-data platforms, run as Prefect flows.",
                  cls=OneLineUsageErrors, no_args_is_help=True, pretty_exceptions_enable=False)
db_app = typer.Typer(help="The labvault database schema.", no_args_is_help=True)
backup_app = typer.Typer(help="Create, find, retry, hold and delete backups.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(backup_app, name="backup")

# Markup off: names, subjects and errors are data, and rich would read `[draft]` as a style.
stdout = Console(markup=False)

JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
YesOption = Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation.")]
SidArgument = Annotated[str, typer.Argument(help="The backup's sid.")]
BackupAdminOption = Annotated[str, typer.Option("--as", help="Email of an admin of the backup's organization.")]


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


def _blocks() -> ModuleType:
    """`tasks.context`, which loads the credential blocks the settings name; imported only then,
    since it starts Prefect."""
    from labvault_cli.prefect_console import quiet_prefect_console
    from tasks import context

    quiet_prefect_console()
    return context


@contextmanager
def _prefect_starting() -> Iterator[None]:
    """Prefect's start-up failures as one line (reading a block starts Prefect, as a flow does)."""
    from labvault_cli.prefect_console import prefect_start_errors

    with prefect_start_errors():
        yield


def _database_url(settings: Settings) -> str:
    """LABVAULT_DATABASE_URL, with the password of LABVAULT_DATABASE_PASSWORD_BLOCK if one is named."""
    if not settings.database_password_block:
        return settings.database_url
    with user_errors(), _prefect_starting():
        return _blocks().database_url(settings)


def _s3_credentials(settings: Settings) -> S3Credentials | None:
    """The keys of LABVAULT_S3_CREDENTIALS_BLOCK, if one is named."""
    if not settings.s3_credentials_block:
        return None
    with user_errors(), _prefect_starting():
        return _blocks().s3_credentials(settings)


def _files_store(settings: Settings) -> Storage:
    return files_store(settings, _s3_credentials(settings))


def _backups_store(settings: Settings) -> Storage:
    return backups_store(settings, _s3_credentials(settings))


def _sessions(settings: Settings):  # type: ignore[no-untyped-def]
    return session_factory(_database_url(settings))


def _print_json(value: Any) -> None:
    sys.stdout.write(json.dumps(value, ensure_ascii=False, indent=2, default=_json_default) + "\n")


def _json_default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return float(value)
    raise TypeError(f"cannot print {type(value).__name__} as JSON")


def confirm(question: str, yes: bool) -> None:
    """Ask on a terminal; with no terminal and no --yes, refuse rather than guess."""
    if yes:
        return
    if not sys.stdin.isatty():
        raise fail("this needs confirmation and there is no terminal to ask on; pass --yes")
    if not typer.confirm(question, default=False):
        raise fail("not confirmed: nothing was changed")


def _table(rows: list[tuple[str, Any]]) -> Table:
    table = Table(show_header=False, box=None, pad_edge=False)
    table.add_column(style="bold")
    table.add_column(overflow="fold")
    for label, value in rows:
        table.add_row(label, "—" if value is None or value == "" else str(value))
    return table


def print_details(details: BackupDetails, currency: str) -> None:
    size = (f"{human_size(details.file_size)} ({details.file_size} bytes)"
            if details.file_size is not None else None)
    progress = (f"{details.progress_done or 0} of {details.progress_total} items"
                if details.progress_total is not None else None)
    stdout.print(_table([
        ("sid", details.sid), ("name", details.name), ("description", details.description),
        ("status", details.status),
        *([("legal hold", "on legal hold: kept and not deletable until released")]
          if details.legal_hold else []),
        ("versions", details.versions), ("files", details.files),
        ("file size", size), ("file path", details.file_path),
        *([("download link", details.download_url)]
          if details.download_url and details.download_url != details.file_path else []),
        ("date expired", details.date_expired), ("date created", details.date_created),
        ("organization", details.organization_sid),
        ("cost", f"{details.cost:.2f} {currency}" if details.cost is not None else None),
        ("requested by", details.requested_by), ("progress", progress),
        ("last progress", details.heartbeat_at), ("flow run", details.flow_run_id),
        ("last verification", details.last_verification),
        ("error", details.error),
    ]))


def print_estimate(estimate: Estimate) -> None:
    currency = estimate.currency
    stdout.print(_table([
        ("organization", estimate.organization_sid), ("versions", estimate.versions),
        ("files", estimate.files),
        ("estimated size", f"{human_size(estimate.estimated_bytes)} ({estimate.estimated_bytes} bytes)"),
        ("cost", f"{estimate.cost} {currency}"),
        ("storage", f"{estimate.storage_cost_per_month} {currency} per month; "
                    f"{estimate.storage_cost_for_retention} {currency} for the "
                    f"{estimate.retention_days} days it is kept"),
    ]))


def run_flow(flow: Callable[..., Any], **parameters: Any) -> Any:
    """Run a flow in this process and return its final state (Prefect's ephemeral mode if no
    PREFECT_API_URL is set). Prefect's console stays quiet: a labvault error ends as the one
    `error:` line, its tracebacks only in the run's logs."""
    from prefect import tags

    from labvault_cli.prefect_console import prefect_start_errors, quiet_prefect_console
    from tasks.run_tags import door_tag

    quiet_prefect_console()
    with prefect_start_errors(), tags(door_tag("cli")):
        return flow(**parameters, return_state=True)


def _backup_of_run(settings: Settings, state: Any) -> BackupDetails:
    """The backup a create or retry run worked on; a run refused before any row re-raises."""
    with _sessions(settings)() as session:
        backup = catalog.backup_for_flow_run(session, str(state.state_details.flow_run_id))
        if backup is None:
            state.result()  # raises the refusal
            raise LabvaultError("the flow run ended without a backup")
        return BackupDetails.of(backup, _backups_store(settings))


def _report_backup(details: BackupDetails, settings: Settings, as_json: bool) -> None:
    if as_json:
        _print_json(asdict(details))
    else:
        print_details(details, settings.currency)
    if details.status != "Completed":
        raise fail(f"backup {details.sid} failed: {details.error}")


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Create or upgrade the database schema (Alembic migrations)."""
    settings = _settings()
    with user_errors():
        upgrade_schema(_database_url(settings))
    stdout.print("Database schema is up to date.")


@backup_app.command("estimate")
def backup_estimate(
    org: Annotated[str, typer.Option("--org", help="Organization sid.")],
    as_json: JsonOption = False,
) -> None:
    """Show the size and cost a backup of the organization would have now."""
    settings = _settings()
    with user_errors(), _sessions(settings)() as session:
        estimate = estimate_backup(session, org, Pricing.of(settings))
    if as_json:
        _print_json(asdict(estimate))
    else:
        print_estimate(estimate)


def create_backup_now(settings: Settings, request: BackupRequest, *, progress: bool) -> BackupDetails:
    """Run the create-backup flow for an already checked and confirmed request."""
    from flows.create_backup import create_backup  # Prefect loads only when a flow runs

    with backup_progress_bar(_database_url(settings), request.organization_sid,
                             request.requested_by, enabled=progress and sys.stderr.isatty()):
        state = run_flow(create_backup, organization_sid=request.organization_sid,
                         name=request.name, requested_by=request.requested_by,
                         description=request.description)
    return _backup_of_run(settings, state)


@backup_app.command("create")
def backup_create(
    org: Annotated[str, typer.Option("--org", help="Organization sid to back up.")],
    name: Annotated[str, typer.Option("--name", help="Short name of the backup.")],
    requested_by: Annotated[str, typer.Option("--as", help="Email of an admin of the organization.")],
    description: Annotated[str, typer.Option("--description", help="Longer text to remember it by.")] = "",
    yes: YesOption = False,
    as_json: JsonOption = False,
) -> None:
    """Back up one organization now: show the cost, ask, then run the create-backup flow."""
    settings = _settings()
    with user_errors():
        with _sessions(settings)() as session:
            request = backups.check_request(session, BackupRequest(org, name, description, requested_by))
            estimate = estimate_backup(session, org, Pricing.of(settings))
        _files_store(settings)  # a bad store is refused here, before the backup row exists
        _backups_store(settings).check_writable()
        if not as_json:
            print_estimate(estimate)
        confirm(f"Create this backup for {estimate.cost} {estimate.currency}?", yes)
        details = create_backup_now(settings, request, progress=not as_json)
    _report_backup(details, settings, as_json)


@backup_app.command("list")
def backup_list(
    search: Annotated[str | None, typer.Option("--search", help="Keyword in sid, name or description.")] = None,
    status: Annotated[str, typer.Option("--status", help="all, completed, in-progress or error.")] = "all",
    org: Annotated[str | None, typer.Option("--org", help="Only this organization's backups.")] = None,
    as_json: JsonOption = False,
) -> None:
    """List backups, newest first."""
    settings = _settings()
    with user_errors(), _sessions(settings)() as session:
        rows = [BackupDetails.of(b) for b in catalog.list_backups(
            session, search=search, status=catalog.parse_status_filter(status),
            organization_sid=org)]
    if as_json:
        _print_json([asdict(row) for row in rows])
        return
    if not rows:
        filtered = search is not None or status != "all" or org is not None
        stdout.print("No backups match." if filtered else "No backups yet.")
        return
    table = Table("sid", "name", "status", "versions", "files", "size", "created", "expires", "checked")
    for row in rows:
        checked = f"{row.verified_at[:10]} {'ok' if row.verified_ok else 'FAILED'}" if row.verified_at else "—"
        table.add_row(row.sid, row.name, row.status + (" (legal hold)" if row.legal_hold else ""),
                      str(row.versions or 0), str(row.files or 0),
                      human_size(row.file_size), row.date_created[:19],
                      (row.date_expired or "—")[:19], checked)
    stdout.print(table)


@backup_app.command("show")
def backup_show(sid: SidArgument, as_json: JsonOption = False) -> None:
    """Show every field of one backup, with its progress while it runs."""
    settings = _settings()
    with user_errors(), _sessions(settings)() as session:
        details = BackupDetails.of(catalog.get_backup(session, sid), _backups_store(settings))
    if as_json:
        _print_json(asdict(details))
    else:
        print_details(details, settings.currency)


@backup_app.command("delete")
def backup_delete(
    sid: SidArgument,
    requested_by: BackupAdminOption,
    yes: YesOption = False,
    as_json: JsonOption = False,
) -> None:
    """Delete a backup: its archive leaves storage and the backup leaves every listing."""
    from flows.delete_backup import delete_backup

    settings = _settings()
    with user_errors():
        with _sessions(settings)() as session:
            store = _backups_store(settings)
            backup = deletion.check_delete(session, sid, requested_by, store)
            name = backup.name
        store.check_writable()  # the archive can be removed there
        confirm(f"Delete backup {sid} ({name}) and its archive?", yes)
        run_flow(delete_backup, backup_sid=sid, requested_by=requested_by).result()
    if as_json:
        _print_json({"sid": sid, "deleted": True})
    else:
        stdout.print(f"Backup {sid} ({name}) deleted.")


def _legal_hold(sid: str, requested_by: str, *, on: bool, as_json: bool) -> None:
    from labvault.legal_hold import set_legal_hold

    settings = _settings()
    with user_errors(), _sessions(settings)() as session:
        backup = set_legal_hold(session, _backups_store(settings), sid, requested_by, on=on, door="cli")
        name = backup.name
    if as_json:
        _print_json({"sid": sid, "legal_hold": on})
    else:
        stdout.print(f"Backup {sid} ({name}) " + ("is on legal hold: expiry keeps it and delete refuses it."
                                                  if on else "is released from legal hold."), soft_wrap=True)


@backup_app.command("hold")
def backup_hold(
    sid: SidArgument,
    requested_by: BackupAdminOption,
    as_json: JsonOption = False,
) -> None:
    """Put a Completed backup on legal hold: kept past its expiry, not deletable until released
    (on S3 with Object Lock, its archive is held too)."""
    _legal_hold(sid, requested_by, on=True, as_json=as_json)


@backup_app.command("release")
def backup_release(
    sid: SidArgument,
    requested_by: BackupAdminOption,
    as_json: JsonOption = False,
) -> None:
    """Release a backup from legal hold: expiry and delete treat it as any other again."""
    _legal_hold(sid, requested_by, on=False, as_json=as_json)


@backup_app.command("retry")
def backup_retry(
    sid: SidArgument,
    requested_by: BackupAdminOption,
    as_json: JsonOption = False,
) -> None:
    """Make a backup that ended in Error again, under the same sid, for an admin of its organization."""
    from flows.retry_backup import retry_backup

    settings = _settings()
    with user_errors():
        with _sessions(settings)() as session:
            organization = backups.check_retry(session, sid, requested_by).organization_sid
        _backups_store(settings).check_writable()  # refused here, before the backup runs again
        with backup_progress_bar(_database_url(settings), organization, requested_by.strip(),
                                 enabled=not as_json and sys.stderr.isatty()):
            state = run_flow(retry_backup, backup_sid=sid, requested_by=requested_by)
        details = _backup_of_run(settings, state)
    _report_backup(details, settings, as_json)


@app.command()
def expire(as_json: JsonOption = False) -> None:
    """Delete expired backups, reap stale runs to Error and remove orphaned partial archives."""
    from flows.expire_backups import expire_backups

    _settings()  # a bad setting fails here, in one line, before Prefect starts
    with user_errors():
        report = run_flow(expire_backups).result()
    if as_json:
        _print_json(report)
        return
    stdout.print(_table([
        ("deleted (expired)", ", ".join(report["deleted"]) or "none"),
        ("expired but kept", "; ".join(report["kept"]) or "none"),
        ("reaped to Error (stale)", ", ".join(report["reaped"]) or "none"),
        ("archives of failed backups removed", ", ".join(report["failed_archives_removed"]) or "none"),
        ("orphaned partials removed", ", ".join(report["orphans_removed"]) or "none"),
        ("interrupted restores settled", ", ".join(report["restores_settled"]) or "none"),
    ]))


@backup_app.command("verify")
def backup_verify(
    source: Annotated[str, typer.Argument(help="Backup sid, path of a zip, or URL (s3://…, https://…).")],
    as_json: JsonOption = False,
) -> None:
    """Read an archive once and check every entry against its manifest."""
    from labvault.archive.rules import ArchiveLimits
    from labvault.archive.verify import verify_archive
    from labvault.archive_sources import archive_opener

    settings = _settings()
    with user_errors():
        with _sessions(settings)() as session:
            open_source, label = archive_opener(source, session, _backups_store(settings),
                                                max_bytes=settings.archive_max_bytes)
        with open_source() as stream:
            report = verify_archive(stream, label=label,
                                    limits=ArchiveLimits.with_max_total(settings.archive_max_bytes))
    if as_json:
        _print_json({**asdict(report), "ok": report.ok})
    else:
        stdout.print(_table([
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


@app.command()
def restore(
    source: Annotated[str, typer.Argument(help="Backup sid, path of a zip, or URL (s3://…, https://…).")],
    to_database: Annotated[str, typer.Option(
        "--to-database", help="SQLAlchemy URL to restore into, without a password (see "
                              "--to-database-password-secret, PGPASSWORD, ~/.pgpass).")],
    to_files: Annotated[str, typer.Option("--to-files", help="Folder or URL for the files.")],
    org: Annotated[str | None, typer.Option("--org", help="Refuse unless the archive holds this organization.")] = None,
    merge: Annotated[str | None, typer.Option("--merge", help="skip or overwrite, for a target that is not empty.")] = None,
    password_secret: Annotated[str | None, typer.Option(
        "--to-database-password-secret",
        help="Name of a Prefect Secret block holding the target database's password.")] = None,
    as_json: JsonOption = False,
) -> None:
    """Verify an archive, then restore it into an empty database and files store."""
    from flows.restore_backup import restore_backup
    from labvault.archive_sources import archive_opener, hold_link
    from labvault.db.engine import check_connection
    from labvault.storage.from_url import storage_for
    from labvault.url_secrets import STORE_CREDENTIALS, database_url, files_url, refuse_credentials

    settings = _settings()
    if merge is not None and merge not in ("skip", "overwrite"):
        raise fail(f"unknown merge policy {merge!r}; use skip or overwrite")
    with user_errors():  # every refusal below comes before any Prefect run starts
        refuse_credentials(source, name="SOURCE", instead=STORE_CREDENTIALS)
        target = database_url(to_database, name="--to-database", secret_option="--to-database-password-secret")
        files = storage_for(files_url(to_files, name="--to-files"), setting="--to-files",
                            s3_credentials=_s3_credentials(settings))
        with _sessions(settings)() as session:
            archive_opener(source, session, _backups_store(settings), max_bytes=settings.archive_max_bytes)
        if password_secret:
            with _prefect_starting():
                target = target.set(password=_blocks().secret_password(
                    password_secret, name="--to-database-password-secret"))
        check_connection(target.render_as_string(hide_password=False), name="--to-database")
        files.check_writable()
        report = run_flow(restore_backup, source=hold_link(source), to_database_url=to_database,
                          to_files_url=to_files, organization_sid=org, merge=merge,
                          to_database_password_secret=password_secret).result()
    if as_json:
        _print_json(report)
    else:
        stdout.print(_table([(key.replace("_", " "), value) for key, value in report.items()]))


@app.command()
def serve(
    limit: Annotated[int | None, typer.Option("--limit", min=1, help="Most flow runs at once.")] = None,
) -> None:
    """Serve every deployment of prefect.yaml from this process (no work pool needed)."""
    from deployments.serve import serve_all

    _settings()  # a bad setting fails here, in one line, before Prefect starts
    with user_errors():
        serve_all(limit=limit)


@app.command()
def web(
    host: Annotated[str, typer.Option("--host", help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=1, max=65535, help="Port to listen on.")] = 8000,
    sign_in_as: Annotated[str | None, typer.Option(
        "--as", help="Print a one-time sign-in link for this admin (no mail server needed).")] = None,
) -> None:
    """Serve the Backups page for lab admins (list, search, add with cost, download, delete)."""
    import uvicorn

    from labvault import sign_in
    from labvault_web.app import create_app

    settings = _settings()
    base = settings.public_url or f"http://{host}:{port}"
    with user_errors():
        app_ = create_app(settings)
        if sign_in_as is not None:
            with _sessions(settings)() as session:
                links = sign_in.issue_links(session, sign_in_as)
            if not links:
                raise fail(f"{sign_in_as!r} is not an admin of any organization (or asked for too many "
                           "links in the last 15 minutes); give an admin's email")
            for admin, token in links:
                stdout.print(f"Sign in to the Backups page of {admin.organization_sid} (once, within "
                             f"{int(sign_in.LINK_LIFETIME.total_seconds() // 60)} minutes):\n"
                             f"    {base}/sign-in/link?token={token}", soft_wrap=True)
    uvicorn.run(app_, host=host, port=port, proxy_headers=True, log_level="warning")


@app.command()
def demo() -> None:
    """Create the schema, load the demo organization and back it up once."""
    from labvault.demo import load_demo

    settings = _settings()
    with user_errors():
        upgrade_schema(_database_url(settings))
        with _sessions(settings)() as session:
            loaded = load_demo(session, _files_store(settings))
        stdout.print(f"Demo organization {loaded.sid!r} {'loaded' if loaded.created else 'already there'}; "
                     f"backing it up as {loaded.admin_email} …")
        details = create_backup_now(settings, BackupRequest(loaded.sid, "Demo backup",
                                                            "Made by labvault demo",
                                                            loaded.admin_email), progress=True)
    print_details(details, settings.currency)
    if details.status != "Completed":
        raise typer.Exit(code=1)
    stdout.print(f"\nThe zip is at: {details.file_path}")
