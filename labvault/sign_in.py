"""Password-less sign-in for admins: a one-time link, sent by email or printed for the demo.

Only the SHA-256 of a token is stored: a copy of the database opens no session. A token works
once and for `LINK_LIFETIME`; asking for links is bounded per address, so the mailbox of an
admin cannot be flooded through the page. Whether an address belongs to an admin is never told.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from labvault.db.models import SignInToken, User
from labvault.errors import PermissionDeniedError
from labvault.utc import utcnow

LINK_LIFETIME = timedelta(minutes=15)
LINKS_PER_ADDRESS = 5  # within LINK_LIFETIME


@dataclass(frozen=True)
class Admin:
    """A signed-in admin: one account of one organization (an email may administer several)."""

    user_id: int
    email: str
    organization_sid: str


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def issue_links(session: Session, email: str, now: datetime | None = None) -> list[tuple[Admin, str]]:
    """A fresh token for each admin account of `email` (none for an unknown address, or once the
    address asked too often). Commits."""
    now = now or utcnow()
    address = email.strip().lower()
    recent = session.scalar(select(func.count()).select_from(SignInToken).where(
        SignInToken.email == address, SignInToken.created_at > now - LINK_LIFETIME))
    if not address or recent >= LINKS_PER_ADDRESS:
        return []
    issued = []
    for user in session.scalars(select(User).where(func.lower(User.email) == address,
                                                   User.is_admin.is_(True)).order_by(User.id)):
        token = secrets.token_urlsafe(32)
        session.add(SignInToken(token_hash=_hash(token), user_id=user.id, email=address,
                                created_at=now, expires_at=now + LINK_LIFETIME))
        issued.append((Admin(user.id, user.email, user.organization_sid), token))
    session.commit()
    return issued


def redeem(session: Session, token: str, now: datetime | None = None) -> Admin:
    """The admin a link signs in, once: a used, expired or unknown token is refused. Commits."""
    now = now or utcnow()
    used = session.execute(
        update(SignInToken).where(SignInToken.token_hash == _hash(token), SignInToken.used_at.is_(None),
                                  SignInToken.expires_at > now).values(used_at=now)
        .returning(SignInToken.user_id)
    ).first()
    session.commit()
    if used is None:
        raise PermissionDeniedError("this sign-in link has expired or was already used; ask for a new one")
    return current_admin(session, used.user_id)


def current_admin(session: Session, user_id: int) -> Admin:
    """The account behind a session, checked on every request: an admin removed since loses access."""
    user = session.get(User, user_id)
    if user is None or not user.is_admin:
        raise PermissionDeniedError("this account is not an admin of its organization (any more)")
    return Admin(user.id, user.email, user.organization_sid)
