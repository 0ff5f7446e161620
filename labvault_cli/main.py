"""`labvault`: the command-line door into the same flows the Prefect UI runs.

Commands stay thin: they check the request with the domain (fast, no Prefect), run a flow or
read the database, and print a table or JSON. User mistakes end as one line on stderr and exit
code 1, never a traceback.
"""

from __future__ import annotations

import os

import typer

# Prefect's analytics are on unless turned off: each temporary server reports its start (and on a
# first run, or with no network, prints errors from it), and a terminal is told so on a first
# run. Off unless the user chose; read when Prefect is imported, which the commands do later.
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
if os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"].lower() in ("false", "0", "no", "off"):
    os.environ.setdefault("DO_NOT_TRACK", "1")
# The temporary server gets 20 s to start by Prefect's default, which a busy 2-core machine
# overran; 90 s unless the user chose (the CLI still waits for nothing when it starts sooner).
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "90")

# Imported after the defaults above, so they hold even if a command module one day imports Prefect.
from labvault_cli import backup, db, demo, expire, restore, serve, web  # noqa: E402
from labvault_cli.errors import OneLineUsageErrors  # noqa: E402

app = typer.Typer(name="labvault", help="labvault: backups of lab-data platforms, run as Prefect flows.",
                  cls=OneLineUsageErrors, no_args_is_help=True, pretty_exceptions_enable=False)
for command in (expire.expire, restore.restore, serve.serve, web.web, demo.demo):
    app.command()(command)
app.add_typer(db.app, name="db")
app.add_typer(backup.app, name="backup")
