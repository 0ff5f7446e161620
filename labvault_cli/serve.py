"""`labvault serve`: every deployment of prefect.yaml served from this process."""

from __future__ import annotations

from typing import Annotated

import typer

from labvault_cli.context import load_settings
from labvault_cli.errors import user_errors


def serve(
    limit: Annotated[int | None, typer.Option("--limit", min=1, help="Most flow runs at once.")] = None,
) -> None:
    """Serve every deployment of prefect.yaml from this process (no work pool needed)."""
    from deployments.serve import serve_all

    load_settings()  # a bad setting fails here, in one line, before Prefect starts
    with user_errors():
        serve_all(limit=limit)
