"""Builders of source data for tests: rows plus blobs, and what a backup must then contain."""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

from sqlalchemy.orm import Session

from labvault.db.models import File, Organization, Record, User, Version
from labvault.storage.store import Storage

DEFAULT_FILE_NAMES = [
    "report.pdf",
    "Résumé été.txt",
    "../../etc/passwd",
    "plate reader/run 3.csv",
    "bell\x07 and\u202e rtl.txt",
    "x" * 300 + ".dat",
]


@dataclass
class OrganizationFixture:
    sid: str
    admin_email: str
    member_email: str
    versions: dict[str, Version] = field(default_factory=dict)
    files: dict[str, tuple[File, bytes]] = field(default_factory=dict)


def make_organization(session: Session, storage: Storage, *, sid: str = "org-1",
                      records: int = 4, versions_per_record: int = 2,
                      file_names: list[str] | None = None, seed: int = 1) -> OrganizationFixture:
    """Insert an organization with an admin, a non-admin member, records, versions and files."""
    rng = random.Random(seed)
    made = OrganizationFixture(sid=sid, admin_email=f"admin@{sid}.example",
                               member_email=f"member@{sid}.example")
    created = datetime(2026, 3, 1, 12, 0, tzinfo=timezone.utc)
    session.add(Organization(sid=sid, name=f"Organization {sid}"))
    session.add_all([
        User(organization_sid=sid, email=made.admin_email, name="Admin", is_admin=True),
        User(organization_sid=sid, email=made.member_email, name="Member", is_admin=False),
    ])
    record_sids = [f"{sid}-rec-{index}" for index in range(records)]
    session.add_all(Record(sid=r, organization_sid=sid, name=f"Record {r}") for r in record_sids)
    session.flush()
    for index, record_sid in enumerate(record_sids):
        for number in range(1, versions_per_record + 1):
            version = Version(
                sid=f"{record_sid}-v{number}", record_sid=record_sid, organization_sid=sid,
                number=number, created_at=created + timedelta(hours=index, minutes=number),
                created_by=made.member_email,
                data={"title": f"T{index}", "value": rng.random(), "unicode": "µg ✓",
                      "nested": {"list": [1, 2, number]}},
            )
            session.add(version)
            made.versions[version.sid] = version
    for index, name in enumerate(file_names if file_names is not None else DEFAULT_FILE_NAMES):
        uid = f"{sid}-{hashlib.sha1(f'{sid}{index}'.encode()).hexdigest()[:12]}"
        data = rng.randbytes(rng.choice([0, 10, 70_000, 1_500_000]) if index else 2_100_000)
        key = f"{sid}/{uid}"
        pending = storage.open_write(key)
        pending.write(data)
        pending.commit()
        row = File(uid=uid, organization_sid=sid, record_sid=record_sids[index % records],
                   name=name, size=len(data), content_type="application/octet-stream",
                   storage_key=key, created_at=created + timedelta(days=index, seconds=7 * index))
        session.add(row)
        made.files[uid] = (row, data)
    session.commit()
    return made
