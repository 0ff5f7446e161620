"""A progress bar for a backup running in this process, fed by the backup row's progress.

The flow records `progress_done` / `progress_total` on the row as it goes; a watcher thread reads
them back, so the bar needs no hook into Prefect and shows exactly what `backup show` would.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from labvault import catalog
from labvault.db.engine import session_factory
from labvault.utc import utcnow

POLL_SECONDS = 0.5


@contextmanager
def _log_consoles_redirected(console: Console) -> Iterator[None]:
    """Let rich log handlers (Prefect's console handler) print above the bar, not through it
    (on a console without markup, as Prefect's own: a `[labvault]` subject stays as it is)."""
    loggers = [logging.getLogger()] + [
        logger for logger in logging.Logger.manager.loggerDict.values()
        if isinstance(logger, logging.Logger)
    ]
    swapped = [(handler, handler.console) for logger in loggers for handler in logger.handlers
               if isinstance(getattr(handler, "console", None), Console)]
    for handler, _ in swapped:
        handler.console = console  # type: ignore[attr-defined]
    try:
        yield
    finally:
        for handler, original in swapped:
            handler.console = original  # type: ignore[attr-defined]


@contextmanager
def backup_progress_bar(database_url: str, organization_sid: str, requested_by: str,
                        *, enabled: bool) -> Iterator[None]:
    """Show a bar on stderr while the block runs (only where stderr is a terminal)."""
    if not enabled:
        yield
        return
    since = utcnow()
    stop = threading.Event()
    sessions = session_factory(database_url)
    progress = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                        TimeElapsedColumn(), console=Console(stderr=True, markup=False),
                        transient=True)
    task = progress.add_task("starting backup", total=None)

    def show() -> None:
        with sessions() as session:
            backup = catalog.newest_started_since(session, organization_sid, requested_by, since)
            if backup is not None:
                progress.update(task, description=f"backup {backup.sid}",
                                completed=backup.progress_done or 0,
                                total=backup.progress_total or None)

    def watch() -> None:
        while not stop.wait(POLL_SECONDS):
            show()

    watcher = threading.Thread(target=watch, name="labvault-progress", daemon=True)
    with progress, _log_consoles_redirected(progress.console):
        watcher.start()
        try:
            yield
        finally:
            stop.set()
            watcher.join()
            show()  # where the backup ended, not where the last poll found it
            progress.refresh()
