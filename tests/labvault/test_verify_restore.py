"""Verify catches damage; restore brings an organization back exactly, and hostile archives
are refused with nothing written anywhere."""

from __future__ import annotations

import hashlib
import json
import stat
import warnings
import zipfile
from pathlib import Path

import pytest
from sqlalchemy import func, select

from labvault import backups
from labvault.archive.verify import ArchiveLimits, verify_archive
from labvault.db.engine import session_factory, upgrade_schema
from labvault.db.models import File, Organization, Record, User, Version
from labvault.errors import InvalidInputError
from labvault.restore import MergePolicy, restore_archive
from labvault.storage.folders import FsspecStorage
from tests.archive_checks import read_manifest
from tests.labvault.test_backups import request_for, run_backup


@pytest.fixture
def archive(sessions, files, backups_storage, organization) -> Path:  # type: ignore[no-untyped-def]
    sid = run_backup(sessions, files, backups_storage, request_for(organization))
    return Path(backups_storage.url(f"{organization.sid}/{sid}.zip"))


def verify(path: Path):  # type: ignore[no-untyped-def]
    with path.open("rb") as source:
        return verify_archive(source, label=str(path))


def rewrite(source: Path, target: Path, *, drop: str | None = None,
            add: tuple[str, bytes] | None = None) -> Path:
    with zipfile.ZipFile(source) as old, zipfile.ZipFile(target, "w") as new:
        for info in old.infolist():
            if info.filename != drop:
                new.writestr(info, old.read(info))
        if add:
            new.writestr(*add)
    return target


def test_a_good_archive_verifies(archive: Path, organization) -> None:  # type: ignore[no-untyped-def]
    report = verify(archive)
    assert report.ok, report.problems
    assert (report.versions, report.files) == (len(organization.versions), len(organization.files))
    assert report.organization_sid == organization.sid


def test_a_flipped_byte_is_caught(archive: Path, tmp_path: Path) -> None:
    with zipfile.ZipFile(archive) as zf:
        # the largest entry whose bytes are copied, not compressed (deflate's stored blocks)
        info = max((i for i in zf.infolist() if i.compress_size >= i.file_size), key=lambda i: i.file_size)
    data = bytearray(archive.read_bytes())
    data[info.header_offset + 30 + len(info.filename.encode()) + 100 + 20] ^= 0xFF
    damaged = tmp_path / "flipped.zip"
    damaged.write_bytes(bytes(data))
    report = verify(damaged)
    assert not report.ok
    assert any(info.filename in problem for problem in report.problems), report.problems


def test_a_missing_entry_is_caught(archive: Path, tmp_path: Path, organization) -> None:  # type: ignore[no-untyped-def]
    gone = f"{organization.sid}/versions/{next(iter(organization.versions))}.json"
    report = verify(rewrite(archive, tmp_path / "missing.zip", drop=gone))
    assert f"entry {gone!r} is in the manifest but missing from the archive" in report.problems


def test_an_extra_entry_is_caught(archive: Path, tmp_path: Path, organization) -> None:  # type: ignore[no-untyped-def]
    report = verify(rewrite(archive, tmp_path / "extra.zip", add=(f"{organization.sid}/extra.txt", b"hi")))
    assert f"entry '{organization.sid}/extra.txt' is not in the manifest" in report.problems


def test_a_truncated_archive_is_caught(archive: Path, tmp_path: Path) -> None:
    truncated = tmp_path / "truncated.zip"
    truncated.write_bytes(archive.read_bytes()[: archive.stat().st_size // 2])
    report = verify(truncated)
    assert not report.ok and report.problems[0].startswith("not a readable zip archive")


@pytest.fixture
def target(tmp_path: Path):  # type: ignore[no-untyped-def]
    """An empty database and files folder inside `tmp_path/target`."""
    root = tmp_path / "target"
    root.mkdir()
    url = f"sqlite:///{root / 'restored.db'}"
    upgrade_schema(url)
    return url, FsspecStorage(str(root / "files")), root


def open_path(path: Path):  # type: ignore[no-untyped-def]
    return lambda: path.open("rb")


def test_restore_round_trip_recreates_the_organization_exactly(archive: Path, organization, target, tmp_path) -> None:  # type: ignore[no-untyped-def]
    url, files, _root = target
    with session_factory(url)() as session:
        report = restore_archive(open_path(archive), label="a", session=session, files_storage=files)
    assert (report.versions, report.files) == (len(organization.versions), len(organization.files))
    with session_factory(url)() as session:
        for sid, original in organization.versions.items():
            restored = session.get(Version, sid)
            for column in ("sid", "record_sid", "organization_sid", "number", "data", "created_at", "created_by"):
                assert getattr(restored, column) == getattr(original, column), column
        for uid, (original, data) in organization.files.items():
            restored = session.get(File, uid)
            for column in ("uid", "organization_sid", "record_sid", "name", "size", "content_type",
                           "storage_key", "created_at"):
                assert getattr(restored, column) == getattr(original, column), column
            with files.open_read(original.storage_key) as blob:
                assert blob.read() == data
        record_sids = {v.record_sid for v in organization.versions.values()}
        assert set(session.scalars(select(Record.sid))) == record_sids
        assert session.get(Organization, organization.sid).name == f"Organization {organization.sid}"
        session.add(User(organization_sid=organization.sid, email=organization.admin_email, is_admin=True))
        session.commit()

    again_sessions = session_factory(url)
    backups_again = FsspecStorage(str(tmp_path / "second-backups"))
    sid = run_backup(again_sessions, files, backups_again, request_for(organization))
    with zipfile.ZipFile(archive) as first, zipfile.ZipFile(backups_again.url(f"{organization.sid}/{sid}.zip")) as second:
        def entries(zf: zipfile.ZipFile) -> set[tuple[str, int, str]]:
            return {(e["path"], e["size"], e["sha256"]) for e in read_manifest(zf, organization.sid)["entries"]}
        assert entries(first) == entries(second)


def test_a_non_empty_target_is_refused_unless_merging(archive: Path, organization, target) -> None:  # type: ignore[no-untyped-def]
    url, files, _root = target
    with session_factory(url)() as session:
        restore_archive(open_path(archive), label="a", session=session, files_storage=files)
    with session_factory(url)() as session, pytest.raises(InvalidInputError, match="--merge skip"):
        restore_archive(open_path(archive), label="a", session=session, files_storage=files)
    with session_factory(url)() as session:
        skipped = restore_archive(open_path(archive), label="a", session=session, files_storage=files,
                                  merge=MergePolicy.SKIP)
        assert skipped.skipped == len(organization.versions) + len(organization.files)
        assert (skipped.versions, skipped.files) == (0, 0)
    with session_factory(url)() as session:
        replaced = restore_archive(open_path(archive), label="a", session=session, files_storage=files,
                                   merge=MergePolicy.OVERWRITE)
        assert replaced.versions == len(organization.versions)
        assert session.scalar(select(func.count()).select_from(Version)) == len(organization.versions)


def test_restore_refuses_an_archive_of_another_organization(archive: Path, target) -> None:  # type: ignore[no-untyped-def]
    url, files, _root = target
    with session_factory(url)() as session, pytest.raises(InvalidInputError, match="not 'org-9'"):
        restore_archive(open_path(archive), label="a", session=session, files_storage=files,
                        organization_sid="org-9")


# --- hostile archives -------------------------------------------------------------------------

def hostile(path: Path, entries: list[tuple[zipfile.ZipInfo | str, bytes]], *,
            manifest_entries: list[dict] | None = None, lie: dict | None = None) -> Path:
    """A zip with `entries` and a manifest describing them (honestly, unless `lie` says)."""
    described = manifest_entries if manifest_entries is not None else [
        {"path": info.filename if isinstance(info, zipfile.ZipInfo) else info, "kind": "file",
         "size": len(data), "sha256": hashlib.sha256(data).hexdigest(), "uid": f"u{i}",
         "original_name": f"n{i}", "storage_key": f"org-h/u{i}", **(lie or {})}
        for i, (info, data) in enumerate(entries)]
    manifest = {"format_version": 1, "organization": {"sid": "org-h", "name": "H"},
                "backup": {"sid": "bk-h"}, "created": "2026-01-01T00:00:00+00:00",
                "counts": {"versions": 0, "files": len(described)},
                "total_bytes": sum(e["size"] for e in described), "entries": described}
    with zipfile.ZipFile(path, "w") as zf, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # zipfile warns about the duplicate name we want
        for info, data in entries:
            zf.writestr(info, data, compress_type=zipfile.ZIP_DEFLATED)
        zf.writestr("org-h/manifest.json", json.dumps(manifest))
    return path


def symlink(name: str) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name)
    info.external_attr = (stat.S_IFLNK | 0o777) << 16
    return info


HOSTILE = {
    "absolute path": ([("/tmp/labvault-evil.txt", b"x")], None, "absolute path"),
    "dot-dot": ([("org-h/../../labvault-evil.txt", b"x")], None, "climbs out"),
    "symlink": ([(symlink("org-h/link"), b"/etc/passwd")], None, "symbolic link"),
    "duplicate names": ([("org-h/u_a", b"one"), ("org-h/u_a", b"two")], None, "appears twice"),
    "zip bomb": ([("org-h/u_bomb", b"\0" * (30 * 1024 * 1024))], None, "ZIP bomb"),
    "lying sha256": ([("org-h/u_a", b"data")], {"sha256": "0" * 64}, "SHA-256 differs"),
    "lying size": ([("org-h/u_a", b"data")], {"size": 3}, "larger than its declared size of 3 bytes"),
    "escaping storage key": ([("org-h/u_a", b"data")], {"storage_key": "../../labvault-evil"},
                             "not a plain relative path"),
}


@pytest.mark.parametrize("case", list(HOSTILE))
def test_a_hostile_archive_is_refused_and_nothing_is_written(case: str, target, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    entries, lie, message = HOSTILE[case]
    path = hostile(tmp_path / "hostile.zip", entries, lie=lie)
    url, files, root = target
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    with session_factory(url)() as session, pytest.raises(InvalidInputError, match=message):
        restore_archive(open_path(path), label=case, session=session, files_storage=files,
                        limits=ArchiveLimits(max_ratio=200))
    after = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    assert after == before, "something was written"
    assert not Path("/tmp/labvault-evil.txt").exists()
    with session_factory(url)() as session:
        for model in (Organization, Record, Version, File):
            assert session.scalar(select(func.count()).select_from(model)) == 0


def test_a_stored_archive_that_fails_verification_is_removed(archive: Path, backups_storage, organization) -> None:  # type: ignore[no-untyped-def]
    key = str(archive.relative_to(backups_storage.root))
    assert backups.verify_stored_archive(backups_storage, key).ok
    archive.write_bytes(archive.read_bytes()[:-200])
    with pytest.raises(backups.PermanentError, match="failed verification after writing"):
        backups.verify_stored_archive(backups_storage, key)
    assert not archive.exists()


def restored_counts(url: str) -> tuple[int, int, int]:
    with session_factory(url)() as session:
        return tuple(session.scalar(select(func.count()).select_from(model))  # type: ignore[return-value]
                     for model in (Organization, Version, File))


def test_an_archive_rezipped_in_another_order_restores_the_same(archive: Path, organization, target, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Not laid out as labvault writes (the manifest first, entries reversed): still verified and
    restored, through the reader that holds the directory."""
    reordered = tmp_path / "reordered.zip"
    with zipfile.ZipFile(archive) as old, zipfile.ZipFile(reordered, "w") as new:
        for info in reversed(old.infolist()):
            new.writestr(info, old.read(info))
    url, files, _root = target
    with session_factory(url)() as session:
        report = restore_archive(open_path(reordered), label="r", session=session, files_storage=files)
    assert (report.versions, report.files) == (len(organization.versions), len(organization.files))
    assert restored_counts(url) == (1, len(organization.versions), len(organization.files))


def test_an_archive_changed_after_verification_is_refused_and_nothing_stays(archive: Path, target, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Restore reads the archive twice; if its bytes change in between (a flipped bit in the
    last entry, found only after everything before it was written), every row and blob goes."""
    with zipfile.ZipFile(archive) as zf:
        last = zf.infolist()[-2]  # the last entry before the manifest
        assert last.compress_type == zipfile.ZIP_DEFLATED or last.file_size > 0
    data = bytearray(archive.read_bytes())
    data[last.header_offset + 30 + len(last.filename.encode()) + last.compress_size // 2] ^= 0x01
    changed = tmp_path / "changed.zip"
    changed.write_bytes(bytes(data))
    reads = iter([archive, changed])
    url, files, root = target
    with session_factory(url)() as session, pytest.raises(InvalidInputError, match="changed since it was verified"):
        restore_archive(lambda: next(reads).open("rb"), label="c", session=session, files_storage=files)
    assert restored_counts(url) == (0, 0, 0)
    assert not any(path.is_file() for path in (root / "files").rglob("*"))


VERSION = {"sid": "v1", "record_sid": "r1", "number": 1, "created_at": "2026-01-01T00:00:00+00:00",
           "created_by": "a@b", "data": {}}


@pytest.mark.parametrize(("second", "message"), [
    (json.dumps(VERSION).encode(), "names another sid, 'v1'"),  # would overwrite the first
    (b'{"sid": "v2", ', "'org-h/versions/v2.json' is not JSON"),
])
def test_a_bad_version_document_is_refused_by_its_path(second: bytes, message: str, target, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    entries = [("org-h/versions/v1.json", json.dumps(VERSION).encode()), ("org-h/versions/v2.json", second)]
    manifest = {"format_version": 1, "organization": {"sid": "org-h", "name": "H"},
                "backup": {"sid": "bk-h"}, "created": "2026-01-01T00:00:00+00:00",
                "counts": {"versions": 2, "files": 0}, "total_bytes": sum(len(d) for _, d in entries),
                "entries": [{"path": name, "kind": "version", "size": len(data),
                             "sha256": hashlib.sha256(data).hexdigest()} for name, data in entries]}
    path = tmp_path / "two-claims.zip"
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in entries:
            zf.writestr(name, data)
        zf.writestr("org-h/manifest.json", json.dumps(manifest))
    url, files, _root = target
    with session_factory(url)() as session, pytest.raises(InvalidInputError, match=message):
        restore_archive(open_path(path), label="two", session=session, files_storage=files)
    assert restored_counts(url) == (0, 0, 0)
