"""Who is asking: signed session cookies, CSRF tokens and a per-client limit on sign-in requests.

The cookie holds only the signed-in account's id and the CSRF token, signed with the page's key
(itsdangerous) and timestamped, so it expires after `LABVAULT_WEB_SESSION_HOURS` even if a browser
keeps it. It is HttpOnly, SameSite=Lax, and Secure whenever the page is reached over https.
"""

from __future__ import annotations

import os
import secrets
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fastapi import Request, Response
from itsdangerous import BadSignature, URLSafeTimedSerializer

from labvault.settings import Settings

COOKIE = "labvault_session"


def secret_key(settings: Settings) -> str:
    """LABVAULT_WEB_SECRET_KEY, else a random key kept beside the data (readable by its owner
    only), so sessions survive a restart and the key never appears in settings or logs."""
    if settings.web_secret_key is not None:
        return settings.web_secret_key.get_secret_value()
    path = Path(settings.home) / "web-secret-key"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w") as out:
            out.write(secrets.token_urlsafe(48))
    return path.read_text().strip()


@dataclass
class WebSession:
    """What the cookie carries; `changed` says whether the response must set it again."""

    user_id: int | None = None
    csrf: str = field(default_factory=lambda: secrets.token_urlsafe(32))
    changed: bool = False

    def sign_in(self, user_id: int) -> None:
        """A new session for the account, with a new CSRF token (no fixation of an old one)."""
        self.user_id, self.csrf, self.changed = user_id, secrets.token_urlsafe(32), True

    def sign_out(self) -> None:
        self.user_id, self.csrf, self.changed = None, secrets.token_urlsafe(32), True

    def csrf_matches(self, token: str | None) -> bool:
        return bool(token) and secrets.compare_digest(token.encode(), self.csrf.encode())


class SessionCookies:
    """Reads and writes `WebSession`s as signed cookies."""

    def __init__(self, settings: Settings) -> None:
        self._serializer = URLSafeTimedSerializer(secret_key(settings), salt="labvault-web-session")
        self._max_age = settings.web_session_hours * 3600
        self._https = settings.public_url.startswith("https://")

    def read(self, request: Request) -> WebSession:
        raw = request.cookies.get(COOKIE)
        if raw:
            try:
                data: dict[str, Any] = self._serializer.loads(raw, max_age=self._max_age)
                return WebSession(user_id=data.get("u"), csrf=str(data["c"]))
            except (BadSignature, KeyError, TypeError):
                pass
        return WebSession(changed=True)

    def write(self, request: Request, response: Response, session: WebSession) -> None:
        response.set_cookie(COOKIE, self._serializer.dumps({"u": session.user_id, "c": session.csrf}),
                            max_age=self._max_age, httponly=True, samesite="lax", path="/",
                            secure=self._https or request.url.scheme == "https")


class SignInLimiter:
    """At most `limit` sign-in requests per client address in `window` seconds (in memory: one
    web process; the per-address limit is the database's, in `labvault.sign_in`)."""

    def __init__(self, limit: int = 10, window: float = 900.0) -> None:
        self._limit, self._window = limit, window
        self._seen: dict[str, deque[float]] = {}

    def allow(self, client: str) -> bool:
        now = time.monotonic()
        seen = self._seen.setdefault(client, deque())
        while seen and now - seen[0] > self._window:
            seen.popleft()
        if len(seen) >= self._limit:
            return False
        seen.append(now)
        return True
