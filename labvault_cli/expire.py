"""`labvault expire`: the expire-backups flow, run now."""

from __future__ import annotations

from labvault_cli.context import load_settings, run_flow
from labvault_cli.errors import user_errors
from labvault_cli.options import JsonOption
from labvault_cli.terminal import print_json, stdout, table_of


def expire(as_json: JsonOption = False) -> None:
    """Delete expired backups, reap stale runs to Error and remove orphaned partial archives."""
    from flows.expire_backups import expire_backups

    load_settings()  # a bad setting fails here, in one line, before Prefect starts
    with user_errors():
        report = run_flow(expire_backups).result()
    if as_json:
        print_json(report)
        return
    stdout.print(table_of([
        ("deleted (expired)", ", ".join(report["deleted"]) or "none"),
        ("expired but kept", "; ".join(report["kept"]) or "none"),
        ("reaped to Error (stale)", ", ".join(report["reaped"]) or "none"),
        ("archives of failed backups removed", ", ".join(report["failed_archives_removed"]) or "none"),
        ("orphaned partials removed", ", ".join(report["orphans_removed"]) or "none"),
        ("interrupted restores settled", ", ".join(report["restores_settled"]) or "none"),
    ]))
