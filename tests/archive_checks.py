"""Reading a backup archive back, as a user would check it: names, bytes, JSON, manifest, CRCs."""

from __future__ import annotations

import hashlib
import json
import zipfile
from datetime import datetime
from pathlib import Path
from typing import Any

from labvault.archive.safe_names import file_entry_name
from labvault.db.models import Backup
from labvault.utc import as_utc
from tests.factories import OrganizationFixture


def expected_version_document(version: Any) -> dict[str, Any]:
    return {
        "sid": version.sid,
        "record_sid": version.record_sid,
        "number": version.number,
        "created_at": version.created_at.isoformat(),
        "created_by": version.created_by,
        "data": version.data,
    }


def zip_time(when: datetime) -> tuple[int, int, int, int, int, int]:
    """What zipfile reports for an entry dated `when`: its UTC clock time, to two seconds."""
    utc = as_utc(when)
    return utc.year, utc.month, utc.day, utc.hour, utc.minute, utc.second // 2 * 2


def read_manifest(archive: zipfile.ZipFile, organization_sid: str) -> dict[str, Any]:
    return json.loads(archive.read(f"{organization_sid}/manifest.json"))


def assert_archive_matches(path: Path, organization: OrganizationFixture, backup: Backup) -> dict[str, Any]:
    """The zip holds exactly the manifest, one JSON per version and one entry per file."""
    org = organization.sid
    with zipfile.ZipFile(path) as archive:
        assert archive.testzip() is None, "a CRC in the archive is wrong"
        names = set(archive.namelist())
        version_names = {f"{org}/versions/{sid}.json" for sid in organization.versions}
        file_names = {file_entry_name(org, uid, row.name): (row, data)
                      for uid, (row, data) in organization.files.items()}
        assert names == {f"{org}/manifest.json"} | version_names | set(file_names)

        for sid, version in organization.versions.items():
            document = json.loads(archive.read(f"{org}/versions/{sid}.json").decode("utf-8"))
            assert document == expected_version_document(version)
            assert archive.getinfo(f"{org}/versions/{sid}.json").date_time == zip_time(version.created_at)
        for name, (row, data) in file_names.items():
            assert archive.read(name) == data, f"bytes of {name} differ from the source"
            assert archive.getinfo(name).date_time == zip_time(row.created_at), f"{name} is not dated by its upload"

        manifest = read_manifest(archive, org)
        entries = {entry["path"]: entry for entry in manifest["entries"]}
        assert set(entries) == names - {f"{org}/manifest.json"}
        for name, entry in entries.items():
            data = archive.read(name)
            assert entry["size"] == len(data)
            assert entry["sha256"] == hashlib.sha256(data).hexdigest()
        for name, (row, _data) in file_names.items():
            assert entries[name]["kind"] == "file"
            assert entries[name]["uid"] == row.uid
            assert entries[name]["original_name"] == row.name
            assert entries[name]["record_sid"] == row.record_sid
            assert entries[name]["content_type"] == row.content_type

    assert manifest["format_version"] == 1
    assert manifest["backup"]["sid"] == backup.sid
    assert manifest["backup"]["name"] == backup.name
    assert manifest["organization"]["sid"] == org
    assert manifest["counts"] == {"versions": len(organization.versions), "files": len(organization.files)}
    assert manifest["total_bytes"] == sum(entry["size"] for entry in entries.values())
    assert backup.versions == manifest["counts"]["versions"]
    assert backup.files == manifest["counts"]["files"]
    assert backup.file_size == path.stat().st_size
    return manifest
