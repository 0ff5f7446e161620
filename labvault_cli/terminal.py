"""What the commands print and ask on the terminal: tables, JSON, a backup's fields, a
confirmation."""

from __future__ import annotations

import json
import sys
from decimal import Decimal
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

from labvault.backup_text import (
    LEGAL_HOLD,
    cost_text,
    estimate_cost_text,
    progress_text,
    size_text,
    storage_cost_text,
)
from labvault.catalog import BackupDetails
from labvault.pricing import Estimate
from labvault_cli.errors import fail

# Markup off: names, subjects and errors are data, and rich would read `[draft]` as a style.
stdout = Console(markup=False)


def print_json(value: Any) -> None:
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


def table_of(rows: list[tuple[str, Any]]) -> Table:
    table = Table(show_header=False, box=None, pad_edge=False)
    table.add_column(style="bold")
    table.add_column(overflow="fold")
    for label, value in rows:
        table.add_row(label, "—" if value is None or value == "" else str(value))
    return table


def print_details(details: BackupDetails, currency: str) -> None:
    size = (f"{size_text(details.file_size)} ({details.file_size} bytes)"
            if details.file_size is not None else None)
    progress = (progress_text(details.progress_done, details.progress_total)
                if details.progress_total is not None else None)
    stdout.print(table_of([
        ("sid", details.sid), ("name", details.name), ("description", details.description),
        ("status", details.status),
        *([("legal hold", f"{LEGAL_HOLD}: kept and not deletable until released")]
          if details.legal_hold else []),
        ("versions", details.versions), ("files", details.files),
        ("file size", size), ("file path", details.file_path),
        *([("download link", details.download_url)]
          if details.download_url and details.download_url != details.file_path else []),
        ("date expired", details.date_expired), ("date created", details.date_created),
        ("organization", details.organization_sid),
        ("cost", cost_text(details.cost, currency)),
        ("requested by", details.requested_by), ("progress", progress),
        ("last progress", details.heartbeat_at), ("flow run", details.flow_run_id),
        ("last verification", details.last_verification),
        ("error", details.error),
    ]))


def print_estimate(estimate: Estimate) -> None:
    stdout.print(table_of([
        ("organization", estimate.organization_sid), ("versions", estimate.versions),
        ("files", estimate.files),
        ("estimated size", f"{size_text(estimate.estimated_bytes)} ({estimate.estimated_bytes} bytes)"),
        ("cost", estimate_cost_text(estimate)), ("storage", storage_cost_text(estimate)),
    ]))
