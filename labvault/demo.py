"""A demo organization to back up: enough records, versions and awkward files to show the job.

Deterministic (seeded), and idempotent: loading it twice keeps the one organization.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from sqlalchemy.orm import Session

from labvault.db.models import File, Organization, Record, User, Version
from labvault.storage.store import Storage

DEMO_ORGANIZATION_SID = "demo-lab"
DEMO_ADMIN_EMAIL = "admin@demo-lab.example"
RECORDS = 50
VERSIONS_PER_RECORD = 6

# Names a real lab uploads: accents, CJK, spaces, and a few that try to leave the folder.
AWKWARD_FILE_NAMES = [
    "Résumé de l'expérience.pdf",
    "数据 表 2024.csv",
    "Probe Nr. 5 – Ergebnis (final).xlsx",
    "plate reader/run 3.txt",
    "../../etc/passwd",
    "..",
    "  spaced   out  name .dat",
    "ﬁgure\u200f 1.png",
    "very " + "long " * 70 + "name.tif",
    "Ünïcödé naïve café.json",
]
PLAIN_FILE_NAMES = ["spectrum.csv", "gel image.tif", "protocol.docx", "notes.md", "raw.fastq"]
CONTENT_TYPES = {
    "pdf": "application/pdf", "csv": "text/csv", "txt": "text/plain", "png": "image/png",
    "json": "application/json", "tif": "image/tiff", "md": "text/markdown",
}
FILES = 40
LARGEST_FILE_BYTES = 3 * 1024 * 1024


@dataclass(frozen=True)
class DemoOrganization:
    sid: str
    admin_email: str
    created: bool


def _file_size(rng: random.Random, index: int) -> int:
    if index == 0:
        return 0
    if index == 1:
        return LARGEST_FILE_BYTES
    return rng.choice([rng.randint(1, 4096), rng.randint(4096, 256 * 1024),
                       rng.randint(256 * 1024, LARGEST_FILE_BYTES)])


def load_demo(session: Session, files_storage: Storage, *, seed: int = 20261125) -> DemoOrganization:
    """Insert the demo organization, its admin, records, versions and files; commits.

    Does nothing when the organization exists already.
    """
    if session.get(Organization, DEMO_ORGANIZATION_SID) is not None:
        return DemoOrganization(DEMO_ORGANIZATION_SID, DEMO_ADMIN_EMAIL, created=False)
    rng = random.Random(seed)
    start = datetime(2026, 1, 5, 9, 0, tzinfo=timezone.utc)
    session.add(Organization(sid=DEMO_ORGANIZATION_SID, name="Demo Lab (Zürich)"))
    session.add_all([
        User(organization_sid=DEMO_ORGANIZATION_SID, email=DEMO_ADMIN_EMAIL, name="Ada Admin",
             is_admin=True),
        User(organization_sid=DEMO_ORGANIZATION_SID, email="scientist@demo-lab.example",
             name="Sam Scientist", is_admin=False),
    ])
    record_sids = [f"rec-{index:04d}" for index in range(RECORDS)]
    for index, record_sid in enumerate(record_sids):
        session.add(Record(sid=record_sid, organization_sid=DEMO_ORGANIZATION_SID,
                           name=f"Experiment {index + 1}"))
    session.flush()
    for index, record_sid in enumerate(record_sids):
        for number in range(1, VERSIONS_PER_RECORD + 1):
            session.add(Version(
                sid=f"ver-{index:04d}-{number}", record_sid=record_sid,
                organization_sid=DEMO_ORGANIZATION_SID, number=number,
                created_at=start + timedelta(days=index, hours=number),
                created_by="scientist@demo-lab.example",
                data={
                    "title": f"Experiment {index + 1}",
                    "status": rng.choice(["draft", "review", "signed"]),
                    "temperature_c": round(rng.uniform(4, 37), 2),
                    "samples": [f"S{rng.randint(1, 999):03d}" for _ in range(rng.randint(0, 5))],
                    "notes": "Ergebnis: ✓ µg/ml gemessen" if number % 2 else None,
                },
            ))
    names = AWKWARD_FILE_NAMES + PLAIN_FILE_NAMES * FILES
    for index in range(FILES):
        uid = f"{rng.getrandbits(64):016x}"
        name = names[index]
        size = _file_size(rng, index)
        key = f"{DEMO_ORGANIZATION_SID}/{uid}"
        pending = files_storage.open_write(key)
        pending.write(rng.randbytes(size))
        pending.commit()
        extension = name.rsplit(".", 1)[-1].lower()
        session.add(File(
            uid=uid, organization_sid=DEMO_ORGANIZATION_SID, record_sid=record_sids[index % RECORDS],
            name=name, size=size, content_type=CONTENT_TYPES.get(extension, "application/octet-stream"),
            storage_key=key, created_at=start + timedelta(days=index, minutes=30),
        ))
    session.commit()
    return DemoOrganization(DEMO_ORGANIZATION_SID, DEMO_ADMIN_EMAIL, created=True)
