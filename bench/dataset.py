"""Benchmark data: files of random bytes on disk, and organizations in SQLite and PostgreSQL."""

from __future__ import annotations

import json
import math
import os
import random
from datetime import datetime, timezone
from pathlib import Path

from sqlalchemy import insert, text

from labvault.db.engine import engine_for, session_factory, upgrade_schema
from labvault.db.models import File, Organization, Record, User

MiB = 1024 * 1024
CREATED = datetime(2026, 1, 1, tzinfo=timezone.utc)


def write_files(folder: Path, organization: str, total_bytes: int, count: int) -> list[tuple[str, str, int]]:
    """`count` files of random bytes adding up to `total_bytes`: (uid, storage key, size)."""
    size = total_bytes // count
    made = []
    for index in range(count):
        uid = f"f{index:06d}"
        key = f"{organization}/{uid}"
        path = folder / key
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.exists() or path.stat().st_size != size:
            with path.open("wb") as out:
                for _ in range(0, size, 8 * MiB):
                    out.write(os.urandom(min(8 * MiB, size - out.tell())))
        made.append((uid, key, size))
    return made


def write_small_files(folder: Path, organization: str, count: int, smallest: int = 4096,
                      largest: int = 65536) -> list[tuple[str, str, int]]:
    """`count` files of random bytes, sizes log-uniform between `smallest` and `largest` (many
    small uploads, most of them small, as lab data is); the same sizes on every run."""
    sizes = random.Random(count)
    made = []
    for index in range(count):
        size = int(math.exp(sizes.uniform(math.log(smallest), math.log(largest))))
        uid = f"s{index:06d}"
        key = f"{organization}/{uid}"
        path = folder / key
        if index == 0:
            path.parent.mkdir(parents=True, exist_ok=True)
        if not path.exists() or path.stat().st_size != size:
            path.write_bytes(os.urandom(size))
        made.append((uid, key, size))
    return made


def add_organization(url: str, organization: str, versions: int,
                     files: list[tuple[str, str, int]]) -> None:
    """The organization, its admin, one record per 10 versions, versions (bulk) and file rows."""
    upgrade_schema(url)
    with session_factory(url)() as session:
        if session.get(Organization, organization) is not None:
            return
        session.add(Organization(sid=organization, name=organization))
        session.add(User(organization_sid=organization, email=f"admin@{organization}", is_admin=True))
        records = max(1, versions // 10)
        session.execute(insert(Record), [
            {"sid": f"{organization}-r{index}", "organization_sid": organization, "name": f"r{index}"}
            for index in range(records)])
        session.commit()
    if versions:
        _insert_versions(url, organization, versions, max(1, versions // 10))
    if not files:
        return
    with session_factory(url)() as session:
        session.execute(insert(File), [
            {"uid": f"{organization}-{uid}", "organization_sid": organization, "name": f"{uid}.bin",
             "size": size, "storage_key": key, "content_type": "application/octet-stream",
             "created_at": CREATED} for uid, key, size in files])
        session.commit()


def _document(organization: str, index: int) -> dict:
    return {"title": f"Experiment {index}", "temperature_c": 21.5 + index % 7,
            "samples": [f"S{index % 997:03d}", f"S{(index * 7) % 997:03d}"],
            "notes": "Ergebnis: ✓ µg/ml gemessen, alles im Rahmen der Erwartung."}


def _insert_versions(url: str, organization: str, versions: int, records: int) -> None:
    engine = engine_for(url)
    if engine.dialect.name == "postgresql":  # COPY: a million rows in seconds
        raw = engine.raw_connection()
        try:
            with raw.cursor() as cursor, cursor.copy(
                    "COPY versions (sid, record_sid, organization_sid, number, data, created_at, "
                    "created_by) FROM STDIN") as copy:
                for index in range(versions):
                    copy.write_row((f"{organization}-v{index:07d}", f"{organization}-r{index % records}",
                                    organization, index // records + 1,
                                    json.dumps(_document(organization, index)), CREATED, "bench"))
            raw.commit()
            with raw.cursor() as cursor:  # as a live database would have: statistics for the planner
                cursor.execute("ANALYZE versions")
            raw.commit()
        finally:
            raw.close()
        return
    with engine.begin() as connection:
        for start in range(0, versions, 10_000):
            connection.execute(text(
                "INSERT INTO versions (sid, record_sid, organization_sid, number, data, created_at, "
                "created_by) VALUES (:sid, :record, :org, :number, :data, :created, 'bench')"), [
                {"sid": f"{organization}-v{index:07d}", "record": f"{organization}-r{index % records}",
                 "org": organization, "number": index // records + 1,
                 "data": json.dumps(_document(organization, index)),
                 "created": CREATED.replace(tzinfo=None)}
                for index in range(start, min(versions, start + 10_000))])


def write_tree(folder: Path, url: str, organization: str, files_root: Path) -> Path:
    """The same bytes as a plain tree, for the peers: versions as JSON files, files linked in."""
    tree = folder / "tree" / organization
    if tree.exists():
        return tree.parent
    (tree / "versions").mkdir(parents=True)
    with engine_for(url).connect() as connection:
        rows = connection.execute(text(
            "SELECT sid, record_sid, number, created_at, created_by, data FROM versions "
            "WHERE organization_sid = :org"), {"org": organization})
        for sid, record, number, created, by, data in rows:
            document = {"sid": sid, "record_sid": record, "number": number, "created_at": str(created),
                        "created_by": by, "data": data if isinstance(data, dict) else json.loads(data)}
            (tree / "versions" / f"{sid}.json").write_bytes(
                json.dumps(document, ensure_ascii=False, sort_keys=True, indent=1).encode())
    for path in sorted((files_root / organization).iterdir()):
        os.link(path, tree / f"{path.name}_{path.name}.bin")
    return tree.parent

