"""The audit trail: who created, downloaded, retried, held, released or deleted which backup, when, and through
which door (web, CLI, flow). Append-only; kept after the backup is deleted (21 CFR Part 11 asks
for time-stamped audit trails kept as long as the records)."""

from __future__ import annotations

from typing import Literal

from sqlalchemy import select
from sqlalchemy.orm import Session

from labvault.db.models import AuditEvent
from labvault.utc import utcnow

Action = Literal["created", "retried", "deleted", "downloaded", "held", "released"]
Door = Literal["web", "cli", "flow"]
DOORS: tuple[str, ...] = ("web", "cli", "flow")


def record(session: Session, *, organization_sid: str, backup_sid: str, action: Action, actor: str,
           door: str, detail: str = "") -> None:
    """Add one event to the session (the caller commits it with the change it records)."""
    session.add(AuditEvent(at=utcnow(), organization_sid=organization_sid, backup_sid=backup_sid,
                           action=action, actor=actor, door=door if door in DOORS else "flow",
                           detail=detail))


def events_of(session: Session, backup_sid: str) -> list[AuditEvent]:
    """A backup's events, oldest first."""
    return list(session.scalars(select(AuditEvent).where(AuditEvent.backup_sid == backup_sid)
                                .order_by(AuditEvent.at, AuditEvent.id)))
