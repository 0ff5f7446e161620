"""`labvault restore`: verify an archive, then restore it into an empty target."""

from __future__ import annotations

from typing import Annotated

import typer

from labvault_cli.context import (
    backups_store_with_credentials,
    load_settings,
    prefect_blocks,
    prefect_starting,
    run_flow,
    s3_credentials,
    sessions,
)
from labvault_cli.errors import fail, user_errors
from labvault_cli.options import ArchiveSourceArgument, JsonOption
from labvault_cli.terminal import print_json, stdout, table_of


def restore(
    source: ArchiveSourceArgument,
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

    settings = load_settings()
    if merge is not None and merge not in ("skip", "overwrite"):
        raise fail(f"unknown merge policy {merge!r}; use skip or overwrite")
    with user_errors():  # every refusal below comes before any Prefect run starts
        refuse_credentials(source, name="SOURCE", instead=STORE_CREDENTIALS)
        target = database_url(to_database, name="--to-database", secret_option="--to-database-password-secret")
        files = storage_for(files_url(to_files, name="--to-files"), setting="--to-files",
                            s3_credentials=s3_credentials(settings))
        with sessions(settings)() as session:
            archive_opener(source, session, backups_store_with_credentials(settings),
                           max_bytes=settings.archive_max_bytes)
        if password_secret:
            with prefect_starting():
                target = target.set(password=prefect_blocks().secret_password(
                    password_secret, name="--to-database-password-secret"))
        check_connection(target.render_as_string(hide_password=False), name="--to-database")
        files.check_writable()
        report = run_flow(restore_backup, source=hold_link(source), to_database_url=to_database,
                          to_files_url=to_files, organization_sid=org, merge=merge,
                          to_database_password_secret=password_secret).result()
    if as_json:
        print_json(report)
    else:
        stdout.print(table_of([(key.replace("_", " "), value) for key, value in report.items()]))
