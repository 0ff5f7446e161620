"""The Backups page's routes: sign-in, list, detail, add, delete, retry and download.

Every route that shows or changes a backup asks `signed_in_admin` who is asking and
`backup_of` whether the backup is theirs: another organization's backup is 404, never a hint
that it exists. Every POST carries the session's CSRF token.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote, urlencode

from fastapi import FastAPI, Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from sqlalchemy.exc import SQLAlchemyError

from labvault import audit, backup_text, backups, catalog, deletion, sign_in
from labvault.backups import BackupRequest
from labvault.catalog import BackupDetails
from labvault.db.engine import session_factory
from labvault.db.models import Backup, BackupStatus
from labvault.errors import (
    InvalidInputError,
    LabvaultError,
    NotFoundError,
    PermissionDeniedError,
)
from labvault.notification import notifier_for, sign_in_notice
from labvault.pricing import Pricing, estimate_backup
from labvault.settings import Settings
from labvault.utc import utcnow
from labvault_web.downloads import archive_response
from labvault_web.runs import FlowRuns
from labvault_web.sessions import SessionCookies, SignInLimiter, WebSession
from tasks import context  # the credential blocks the settings name, read as the flows read them

HERE = Path(__file__).parent
FILTERS = [("all", "All backups"), ("completed", "Backups completed"),
           ("in-progress", "Backups in progress"), ("error", "Backups with errors")]
PER_PAGE = 25
logger = logging.getLogger("labvault.web")


class SignInNeeded(Exception):
    """No session: pages send the browser to the sign-in form, and back afterwards."""


class CsrfRefused(Exception):
    """A POST whose CSRF token is missing or not this session's."""


def create_app(settings: Settings, *, flow_runs: FlowRuns | None = None) -> FastAPI:
    """The page for one labvault installation (its database, stores and Prefect set-up)."""
    sessions = session_factory(context.database_url(settings))  # with its password block, if named
    cookies = SessionCookies(settings)
    limiter = SignInLimiter()
    runs = flow_runs or FlowRuns(sessions)
    templates = Jinja2Templates(directory=HERE / "templates")
    templates.env.filters["size"] = backup_text.size_text
    templates.env.globals["backup_text"] = backup_text  # the words the CLI uses too
    templates.env.filters["when"] = lambda value: (value or "—")[:19].replace("T", " ")

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        runs.shutdown()

    app = FastAPI(title="labvault Backups", docs_url=None, redoc_url=None, openapi_url=None,
                  lifespan=lifespan)
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")

    @app.middleware("http")
    async def session_cookie(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        request.state.web_session = cookies.read(request)
        response = await call_next(request)
        if request.state.web_session.changed:
            cookies.write(request, response, request.state.web_session)
        response.headers.setdefault("Content-Security-Policy",
                                    "default-src 'self'; frame-ancestors 'none'; form-action 'self'")
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "same-origin")
        response.headers.setdefault("Cache-Control", "no-store")
        return response

    def web_session(request: Request) -> WebSession:
        return request.state.web_session  # type: ignore[no-any-return]

    def page(request: Request, template: str, status_code: int = 200, **context: Any) -> HTMLResponse:
        return templates.TemplateResponse(request, template, {
            "csrf": web_session(request).csrf, "admin": context.pop("admin", None),
            "currency": settings.currency, **context}, status_code=status_code)

    def signed_in_admin(request: Request) -> sign_in.Admin:
        user_id = web_session(request).user_id
        if user_id is None:
            raise SignInNeeded
        with sessions() as session:
            return sign_in.current_admin(session, user_id)

    def check_csrf(request: Request, token: str | None) -> None:
        if not web_session(request).csrf_matches(token):
            raise CsrfRefused

    def backup_of(admin: sign_in.Admin, sid: str, session: Any) -> Backup:
        backup = catalog.get_backup(session, sid)
        if backup.organization_sid != admin.organization_sid:
            raise NotFoundError(f"backup {sid!r} does not exist")
        return backup

    @app.exception_handler(SignInNeeded)
    async def to_sign_in(request: Request, exc: SignInNeeded) -> Response:
        if request.method != "GET":
            return page(request, "message.html", 403, title="Signed out",
                        message="Your session has ended; sign in again.")
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return RedirectResponse(f"/sign-in?{urlencode({'next': target})}", status_code=303)

    @app.exception_handler(CsrfRefused)
    async def csrf_refused(request: Request, exc: CsrfRefused) -> Response:
        return page(request, "message.html", 403, title="Form refused",
                    message="This form is stale or did not come from this page; go back, reload "
                            "it and try again.")

    @app.exception_handler(NotFoundError)
    async def not_found(request: Request, exc: NotFoundError) -> Response:
        return page(request, "message.html", 404, title="Not found", message=str(exc))

    @app.exception_handler(PermissionDeniedError)
    async def forbidden(request: Request, exc: PermissionDeniedError) -> Response:
        return page(request, "message.html", 403, title="Not allowed", message=str(exc))

    @app.exception_handler(SQLAlchemyError)
    async def database_down(request: Request, exc: SQLAlchemyError) -> Response:
        logger.error("database error: %s", exc)
        return page(request, "message.html", 503, title="Unavailable",
                    message="The database does not answer; try again in a moment.")

    # Sign-in ----------------------------------------------------------------------------------

    @app.get("/")
    def home() -> Response:
        return RedirectResponse("/backups", status_code=303)

    @app.get("/sign-in")
    def sign_in_form(request: Request, next: str = "/backups") -> HTMLResponse:
        return page(request, "sign_in.html", next=_local(next))

    @app.post("/sign-in")
    def ask_for_link(request: Request, email: Annotated[str, Form(max_length=320)] = "",
                     csrf: Annotated[str, Form()] = "", next: Annotated[str, Form()] = "/backups") -> HTMLResponse:
        check_csrf(request, csrf)
        client = request.client.host if request.client else "unknown"
        if limiter.allow(client):
            with sessions() as session:
                issued = sign_in.issue_links(session, email)
            base = settings.public_url or str(request.base_url).rstrip("/")
            for admin, token in issued:
                link = f"{base}/sign-in/link?{urlencode({'token': token, 'next': _local(next)})}"
                _send_link(settings, admin, link)
        else:
            logger.warning("sign-in requests from %s are over the limit", client)
        # The same answer whether or not the address is an admin's, or over a limit.
        return page(request, "message.html", title="Check your email",
                    message="If this address belongs to an admin, a sign-in link is on its way. "
                            f"It works once, for {int(sign_in.LINK_LIFETIME.total_seconds() // 60)} minutes.")

    @app.get("/sign-in/link")
    def confirm_link(request: Request, token: str = "", next: str = "/backups") -> HTMLResponse:
        # A GET changes nothing: mail scanners that open links must not use them up.
        return page(request, "sign_in_confirm.html", token=token, next=_local(next))

    @app.post("/sign-in/link")
    def use_link(request: Request, token: Annotated[str, Form(max_length=200)] = "",
                 csrf: Annotated[str, Form()] = "", next: Annotated[str, Form()] = "/backups") -> Response:
        check_csrf(request, csrf)
        with sessions() as session:
            admin = sign_in.redeem(session, token)
        web_session(request).sign_in(admin.user_id)
        return RedirectResponse(_local(next), status_code=303)

    @app.post("/sign-out")
    def sign_out(request: Request, csrf: Annotated[str, Form()] = "") -> Response:
        check_csrf(request, csrf)
        web_session(request).sign_out()
        return RedirectResponse("/sign-in", status_code=303)

    # Backups ----------------------------------------------------------------------------------

    @app.get("/backups")
    def list_page(request: Request, q: str = "", status: str = "all",
                  page_number: Annotated[int, Query(alias="page", ge=1, le=100_000)] = 1,
                  notice: str = "") -> HTMLResponse:
        admin = signed_in_admin(request)
        try:
            status_filter = catalog.parse_status_filter(status)
        except InvalidInputError:
            status, status_filter = "all", None
        with sessions() as session:
            listing = catalog.page_of_backups(session, admin.organization_sid, search=q.strip() or None,
                                              status=status_filter, page=page_number, per_page=PER_PAGE)
            rows = [BackupDetails.of(backup) for backup in listing.backups]

        def url(**changes: Any) -> str:
            query = {"q": q, "status": status, "page": page_number, **changes}
            return "/backups?" + urlencode({k: v for k, v in query.items() if v not in ("", None)})

        return page(request, "list.html", admin=admin, rows=rows, listing=listing, q=q, status=status,
                    filters=FILTERS, url=url, notice=notice)

    @app.get("/backups/new")
    def new_page(request: Request) -> HTMLResponse:
        admin = signed_in_admin(request)
        return _new_form(request, admin)

    def _new_form(request: Request, admin: sign_in.Admin, status_code: int = 200, **context: Any) -> HTMLResponse:
        with sessions() as session:
            estimate = estimate_backup(session, admin.organization_sid, Pricing.of(settings))
        return page(request, "new.html", status_code, admin=admin, estimate=estimate,
                    name=context.pop("name", ""), description=context.pop("description", ""), **context)

    @app.post("/backups")
    def create(request: Request, name: Annotated[str, Form(max_length=10_000)] = "",
               description: Annotated[str, Form(max_length=100_000)] = "",
               csrf: Annotated[str, Form()] = "") -> Response:
        admin = signed_in_admin(request)
        check_csrf(request, csrf)
        try:
            with sessions() as session:
                request_ = backups.check_request(session, BackupRequest(
                    admin.organization_sid, name, description, admin.email))
                backups.check_none_running(session, admin.organization_sid)
            context.backups_storage(settings).check_writable()
            started = runs.create(request_)
        except InvalidInputError as exc:
            field = "description" if "description" in str(exc) else "name"
            return _new_form(request, admin, 400, name=name, description=description,
                             errors={field: str(exc)})
        except LabvaultError as exc:
            return _new_form(request, admin, 409, name=name, description=description,
                             errors={"form": str(exc)})
        if started is None:
            return RedirectResponse("/backups?" + urlencode(
                {"notice": "Backup requested: it appears here when a worker starts it."}), status_code=303)
        return RedirectResponse(f"/backups/{quote(started.sid)}", status_code=303)

    def _detail_context(admin: sign_in.Admin, sid: str) -> dict[str, Any]:
        with sessions() as session:
            backup = backup_of(admin, sid, session)
            events = audit.events_of(session, sid)
            return {"admin": admin, "backup": BackupDetails.of(backup), "events": events,
                    "running": backup.status is BackupStatus.IN_PROGRESS}

    @app.get("/backups/{sid}")
    def detail_page(request: Request, sid: str, notice: str = "") -> HTMLResponse:
        admin = signed_in_admin(request)
        return page(request, "detail.html", notice=notice, **_detail_context(admin, sid))

    @app.get("/backups/{sid}/fields")
    def detail_fields(request: Request, sid: str) -> HTMLResponse:
        """The detail's fields alone: what the page's script swaps in while a backup runs."""
        admin = signed_in_admin(request)
        return page(request, "fields.html", **_detail_context(admin, sid))

    def to_detail(sid: str, notice: str) -> Response:
        """Back to the backup's page, saying how the action went."""
        return RedirectResponse(f"/backups/{quote(sid)}?" + urlencode({"notice": notice}), status_code=303)

    @app.get("/backups/{sid}/delete")
    def confirm_delete(request: Request, sid: str) -> HTMLResponse:
        admin = signed_in_admin(request)
        with sessions() as session:
            backup = BackupDetails.of(backup_of(admin, sid, session))
        return page(request, "delete.html", admin=admin, backup=backup)

    @app.post("/backups/{sid}/delete")
    def delete(request: Request, sid: str, csrf: Annotated[str, Form()] = "") -> Response:
        admin = signed_in_admin(request)
        check_csrf(request, csrf)
        try:
            with sessions() as session:
                name = deletion.check_delete(session, backup_of(admin, sid, session).sid, admin.email,
                                             context.backups_storage(settings)).name
            runs.delete(sid, admin.email)
        except (NotFoundError, PermissionDeniedError):
            raise  # 404 and 403 pages
        except LabvaultError as exc:
            return to_detail(sid, str(exc))
        return RedirectResponse("/backups?" + urlencode({"notice": f"Backup {sid} ({name}) deleted."}),
                                status_code=303)

    @app.post("/backups/{sid}/retry")
    def retry(request: Request, sid: str, csrf: Annotated[str, Form()] = "") -> Response:
        admin = signed_in_admin(request)
        check_csrf(request, csrf)
        try:
            with sessions() as session:
                backups.check_retry(session, backup_of(admin, sid, session).sid, admin.email)
                backups.check_none_running(session, admin.organization_sid, but=sid)
            runs.retry(sid, admin.email)
        except (NotFoundError, PermissionDeniedError):
            raise  # 404 and 403 pages
        except LabvaultError as exc:
            return to_detail(sid, str(exc))
        return to_detail(sid, "Retry started.")

    @app.get("/backups/{sid}/download")
    def download(request: Request, sid: str) -> Response:
        admin = signed_in_admin(request)
        with sessions() as session:
            backup = backup_of(admin, sid, session)
            if backup.status is not BackupStatus.COMPLETED or (
                    backup.date_expired is not None and backup.date_expired <= utcnow()):
                return page(request, "message.html", 410, admin=admin, title="Not downloadable",
                            message=f"Backup {sid} is {backup.status.label}"
                                    + (" and has expired" if backup.status is BackupStatus.COMPLETED else "")
                                    + "; only a Completed backup that has not expired can be downloaded.")
            response = archive_response(backup, context.backups_storage(settings))
            if "range" not in request.headers:  # one record per download, not per resumed piece
                audit.record(session, organization_sid=backup.organization_sid, backup_sid=sid,
                             action="downloaded", actor=admin.email, door="web")
                session.commit()
            return response

    return app


def _local(target: str) -> str:
    """Only a path of this site to return to after sign-in: never another site (open redirect)."""
    return target if target.startswith("/") and not target.startswith(("//", "/\\")) else "/backups"


def _send_link(settings: Settings, admin: sign_in.Admin, link: str) -> None:
    """Email the link; with no SMTP host it is not sent, and never logged (it opens a session)."""
    if not (settings.smtp_host or settings.smtp_credentials_block):
        logger.warning("No LABVAULT_SMTP_HOST: a sign-in link for %s was not sent; print one with "
                       "`labvault web --as EMAIL`", admin.email)
        return
    minutes = int(sign_in.LINK_LIFETIME.total_seconds() // 60)
    try:
        notifier_for(context.smtp_settings(settings), logger).send(
            sign_in_notice(admin.email, admin.organization_sid, link, minutes))
    except LabvaultError as exc:
        logger.warning("The sign-in link for %s was not sent: %s", admin.email, exc)
