"""`labvault web`: the Backups page for lab admins, and sign-in links printed for it."""

from __future__ import annotations

from typing import Annotated

import typer

from labvault_cli.context import load_settings, sessions
from labvault_cli.errors import fail, user_errors
from labvault_cli.terminal import stdout


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

    settings = load_settings()
    base = settings.public_url or f"http://{host}:{port}"
    with user_errors():
        app_ = create_app(settings)
        if sign_in_as is not None:
            with sessions(settings)() as session:
                links = sign_in.issue_links(session, sign_in_as)
            if not links:
                raise fail(f"{sign_in_as!r} is not an admin of any organization (or asked for too many "
                           "links in the last 15 minutes); give an admin's email")
            for admin, token in links:
                stdout.print(f"Sign in to the Backups page of {admin.organization_sid} (once, within "
                             f"{int(sign_in.LINK_LIFETIME.total_seconds() // 60)} minutes):\n"
                             f"    {base}/sign-in/link?token={token}", soft_wrap=True)
    uvicorn.run(app_, host=host, port=port, proxy_headers=True, log_level="warning")
