"""Entry paths Windows extracts (issue 18 item 3): at most 140 UTF-16 units with the uid and the
extension kept, no reserved names, no trailing dots or spaces, no two names equal but for case;
the original names and sids stay in the manifest, and archives named by the older rules still
verify and restore."""

from __future__ import annotations

import io
import re
import subprocess
import zipfile
from datetime import datetime, timezone
from pathlib import Path

import pytest
from sqlalchemy import select

from labvault.archive.safe_names import (
    MAX_ENTRY_PATH,
    case_distinct_name,
    file_entry_name,
    version_entry_name,
)
from labvault.archive.verify import verify_archive
from labvault.archive.writer import ArchiveWriter
from labvault.db.engine import session_factory, upgrade_schema
from labvault.db.models import File, Version
from labvault.restore import restore_archive
from labvault.storage.folders import FsspecStorage
from tests.archive_checks import read_manifest
from tests.factories import make_organization
from tests.labvault.test_backups import request_for, run_backup

WHEN = datetime(2026, 4, 1, 10, 0, tzinfo=timezone.utc)
RESERVED = re.compile(r"(CON|PRN|AUX|NUL|COM[1-9¹²³]|LPT[1-9¹²³]) *(\.|$)", re.IGNORECASE)
AWKWARD_SIDS = ["CON", "nul.txt", "Com1", "lpt9.json", "aux ", "v1.", "v2 .", "x" * 64, "Case", "CASE"]


def units(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def assert_windows_safe(names: list[str]) -> None:
    """What Windows Explorer needs of every entry path in an archive."""
    for name in names:
        assert units(name) <= MAX_ENTRY_PATH, f"{name!r} is {units(name)} units"
        for part in name.split("/"):
            assert not RESERVED.match(part), f"{name!r} has a reserved name"
            assert part == part.rstrip(" ."), f"{name!r} has a trailing dot or space"
    folded = [name.casefold() for name in names]
    assert len(set(folded)) == len(folded), "two entry names differ only by case"


def test_a_long_name_is_shortened_keeping_uid_and_extension() -> None:
    name = file_entry_name("o" * 64, "u" * 64, "Messung Probe 17 " * 20 + ".fastq")
    assert name == f"{'o' * 64}/{'u' * 64}_Mess.fastq" and units(name) == MAX_ENTRY_PATH
    emoji = file_entry_name("o" * 40, "u1", "🧪" * 100 + ".pdf")  # two units each, as Windows counts
    assert emoji == "o" * 40 + "/u1_" + "🧪" * 46 + ".pdf" and units(emoji) == MAX_ENTRY_PATH
    assert file_entry_name("org", "u1", "a" * 300) == "org/u1_" + "a" * 133
    assert file_entry_name("org", "u1", "report.pdf") == "org/u1_report.pdf"


@pytest.mark.parametrize("sid", AWKWARD_SIDS)
def test_a_version_sid_windows_cannot_take_is_tagged(sid: str) -> None:
    name = version_entry_name("o" * 64, sid)
    assert_windows_safe([name])
    assert re.fullmatch(r"o{64}/versions/[^/]+~[0-9a-f]{10}\.json", name) or name == f"{'o' * 64}/versions/{sid}.json"
    assert version_entry_name("org", "v-17") == "org/versions/v-17.json"


def test_a_case_clash_is_tagged_within_the_bound() -> None:
    assert re.fullmatch(r"org/U1_Report~[0-9a-f]{10}\.PDF", case_distinct_name("org/U1_Report.PDF"))
    assert units(case_distinct_name("o/" + "x" * 138)) == MAX_ENTRY_PATH


def test_awkward_sids_uids_and_names_back_up_verify_extract_and_restore(  # type: ignore[no-untyped-def]
        sessions, files, backups_storage, tmp_path: Path) -> None:
    """Versions with reserved, dotted, long and case-clashing sids; files whose uids differ only
    by case and whose names are long: the archive is Windows-safe, unzip extracts every entry
    apart, and a restore brings back every sid and uid."""
    with sessions() as session:
        organization = make_organization(session, files, sid="org-win", file_names=["a.txt"])
        record = next(iter(organization.versions.values())).record_sid
        session.add_all(Version(sid=sid, record_sid=record, organization_sid="org-win", number=10 + index,
                                data={"sid": sid}, created_at=WHEN) for index, sid in enumerate(AWKWARD_SIDS))
        for uid, name in (("u-abc", "Ergebnis " * 30 + ".csv"), ("U-ABC", "ERGEBNIS " * 30 + ".CSV"), ("u-x", "NUL")):
            blob = files.open_write(f"org-win/{uid}")
            blob.write(uid.encode())
            blob.commit()
            session.add(File(uid=uid, organization_sid="org-win", name=name, size=len(uid),
                             storage_key=f"org-win/{uid}", created_at=WHEN))
        session.commit()
    sid = run_backup(sessions, files, backups_storage, request_for(organization))
    path = Path(backups_storage.url(f"org-win/{sid}.zip"))
    with zipfile.ZipFile(path) as zf:
        names = zf.namelist()
        manifest = read_manifest(zf, "org-win")
    assert_windows_safe(names)
    originals = {entry["uid"]: entry["original_name"] for entry in manifest["entries"] if entry["kind"] == "file"}
    assert {uid: originals[uid] for uid in ("u-abc", "U-ABC", "u-x")} == {
        "u-abc": "Ergebnis " * 30 + ".csv", "U-ABC": "ERGEBNIS " * 30 + ".CSV", "u-x": "NUL"}
    said = {entry.get("sid", entry["path"].rsplit("/", 1)[-1].removesuffix(".json"))
            for entry in manifest["entries"] if entry["kind"] == "version"}
    assert said == set(AWKWARD_SIDS) | set(organization.versions)
    folder = tmp_path / "extracted"
    subprocess.run(["unzip", "-q", str(path), "-d", str(folder)], check=True)
    assert sum(1 for item in folder.rglob("*") if item.is_file()) == len(names)
    with path.open("rb") as source:
        assert verify_archive(source, label="a").ok

    url = f"sqlite:///{tmp_path / 'restored.db'}"
    upgrade_schema(url)
    with session_factory(url)() as session:
        restore_archive(lambda: path.open("rb"), label="a", session=session,
                        files_storage=FsspecStorage(str(tmp_path / "files")))
        assert set(AWKWARD_SIDS) <= set(session.scalars(select(Version.sid)))
        assert {"u-abc", "U-ABC", "u-x"} <= set(session.scalars(select(File.uid)))


def test_an_archive_named_by_the_older_rules_still_verifies_and_restores(tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """Before issue 18: a 226-character file path, a version at `versions/CON.json` whose sid
    only its path says; nothing about them is refused now."""
    store = FsspecStorage(str(tmp_path / "backups"))
    long_path = "org-old/" + "u1_" + "x" * 211 + ".pdf"
    header = {"backup": {"sid": "bk-old"}, "organization": {"sid": "org-old", "name": "Old"},
              "created": WHEN.isoformat()}
    with ArchiveWriter(store.open_write("org-old/bk-old.zip"), key="org-old/bk-old.zip", manifest_header=header,
                       organization_sid="org-old", created=WHEN) as archive:
        archive.add_json("org-old/versions/CON.json", {
            "sid": "CON", "record_sid": "r1", "number": 1, "created_at": WHEN.isoformat(),
            "created_by": None, "data": {}})
        archive.add_stream(long_path, io.BytesIO(b"one"), declared_size=3, uid="u1", original_name="x.pdf")
        archive.add_stream("org-old/u2_A.txt", io.BytesIO(b"two"), declared_size=3, uid="u2", original_name="A.txt")
        archive.seal()
    path = Path(store.url("org-old/bk-old.zip"))
    with zipfile.ZipFile(path) as zf:
        assert "org-old/versions/CON.json" in zf.namelist() and long_path in zf.namelist()
        assert "sid" not in read_manifest(zf, "org-old")["entries"][0]
    with path.open("rb") as source:
        report = verify_archive(source, label="old")
    assert report.ok, report.problems
    url = f"sqlite:///{tmp_path / 'restored.db'}"
    upgrade_schema(url)
    with session_factory(url)() as session:
        restored = restore_archive(lambda: path.open("rb"), label="old", session=session,
                                   files_storage=FsspecStorage(str(tmp_path / "files")))
        assert (restored.versions, restored.files) == (1, 2)
        assert session.get(Version, "CON") is not None


def test_an_organization_sid_windows_reserves_gets_a_safe_folder(  # type: ignore[no-untyped-def]
        sessions, files, backups_storage, tmp_path: Path) -> None:
    """`aux` becomes the folder `_aux`; verification and restore know it as the organization's."""
    with sessions() as session:
        organization = make_organization(session, files, sid="aux", file_names=["a.txt"])
    sid = run_backup(sessions, files, backups_storage, request_for(organization))
    path = Path(backups_storage.url(f"aux/{sid}.zip"))
    with zipfile.ZipFile(path) as zf:
        names = zf.namelist()
    assert_windows_safe(names)
    assert "_aux/manifest.json" in names and all(name.startswith("_aux/") for name in names)
    with path.open("rb") as source:
        assert verify_archive(source, label="a").ok
    url = f"sqlite:///{tmp_path / 'restored.db'}"
    upgrade_schema(url)
    with session_factory(url)() as session:
        restored = restore_archive(lambda: path.open("rb"), label="a", session=session,
                                   files_storage=FsspecStorage(str(tmp_path / "files")))
        assert (restored.organization_sid, restored.files) == ("aux", 1)
