"""`labvault backup verify` and `labvault restore` as a user runs them."""

from __future__ import annotations

import errno
import json
import os
import re
import struct
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import FlowFilter, FlowFilterName
from sqlalchemy import func, select

from labvault.archive.verify import verify_archive
from labvault.db.engine import session_factory
from labvault.db.models import File, Version
from tests.cli.test_cli import labvault
from tests.cli.test_lifecycle_cli import create

ALREADY_HOLDS = ("error: the target already holds files with the same uids, organization 'org-1', "
                 "versions with the same sids; restore into an empty target or pass --merge skip "
                 "(keep what is there) or --merge overwrite (replace it)\n")
PASSWORD = "pw-Never-Shown-42"
NO_PASSWORD_IN_DATABASE_URL = (
    "carries a password, which Prefect would store in plain text with the run's parameters; leave it "
    "out of the URL and give it in PGPASSWORD or ~/.pgpass, or name a Prefect Secret block holding "
    "it with --to-database-password-secret")
NO_PASSWORD_IN_STORE_URL = (
    "carries a password, which Prefect would store in plain text with the run's parameters; leave it "
    "out of the URL and give the store's credentials the usual way (for S3: AWS_ACCESS_KEY_ID and "
    "AWS_SECRET_ACCESS_KEY, ~/.aws or an instance role)")


def test_verify_by_sid_and_by_path_and_a_damaged_copy(organization, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    created = create(organization)
    by_sid = labvault("backup", "verify", created["sid"], "--json")
    assert by_sid.exit_code == 0, by_sid.output
    report = json.loads(by_sid.stdout)
    assert report["ok"] and report["files"] == len(organization.files)
    by_path = labvault("backup", "verify", created["file_path"])
    assert by_path.exit_code == 0 and "every entry matches the manifest" in by_path.stdout

    damaged = tmp_path / "damaged.zip"
    damaged.write_bytes(Path(created["file_path"]).read_bytes()[:-100])
    bad = labvault("backup", "verify", str(damaged))
    assert bad.exit_code == 1
    assert bad.stderr.startswith("error: not a readable zip archive")
    missing = labvault("backup", "verify", str(tmp_path / "nope.zip"))
    assert missing.exit_code == 1 and "does not exist" in missing.stderr


def test_restore_into_an_empty_target_then_refuse_it_twice(organization, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    created = create(organization)
    target_db = f"sqlite:///{tmp_path / 'restored.db'}"
    target_files = str(tmp_path / "restored-files")
    restored = labvault("restore", created["sid"], "--to-database", target_db, "--to-files",
                        target_files, "--org", organization.sid, "--json")
    assert restored.exit_code == 0, restored.output
    report = json.loads(restored.stdout)
    assert (report["versions"], report["files"]) == (len(organization.versions), len(organization.files))
    with session_factory(target_db)() as session:
        assert session.scalar(select(func.count()).select_from(Version)) == len(organization.versions)
        assert session.scalar(select(func.count()).select_from(File)) == len(organization.files)

    again = labvault("restore", created["sid"], "--to-database", target_db, "--to-files", target_files)
    assert again.exit_code == 1
    assert again.stderr == ALREADY_HOLDS  # the whole stderr: no Prefect traceback above it
    bad_merge = labvault("restore", created["sid"], "--to-database", target_db, "--to-files",
                         target_files, "--merge", "maybe")
    assert bad_merge.exit_code == 1
    assert bad_merge.stderr.strip() == "error: unknown merge policy 'maybe'; use skip or overwrite"


def restore_runs() -> int:
    """How many restore-backup flow runs Prefect has seen."""
    with get_client(sync_client=True) as client:
        return len(client.read_flow_runs(flow_filter=FlowFilter(name=FlowFilterName(any_=["restore-backup"]))))


# (what changes in `labvault restore SID --to-database DB --to-files FILES`, the whole stderr)
REFUSED_BEFORE_ANY_RUN: list[tuple[dict[str, str], str]] = [
    ({"--to-database": "not a url"},
     "error: --to-database is not a SQLAlchemy URL; use e.g. sqlite:////path/to/restored.db or "
     "postgresql+psycopg://user@host/database"),
    ({"--to-database": f"postgresql+psycopg://restorer:{PASSWORD}@127.0.0.1/lab"},
     f"error: --to-database 'postgresql+psycopg://restorer:***@127.0.0.1/lab' {NO_PASSWORD_IN_DATABASE_URL}"),
    ({"--to-database": f"postgresql+psycopg://restorer@127.0.0.1/lab?password={PASSWORD}"},
     f"error: --to-database 'postgresql+psycopg://restorer@127.0.0.1/lab?password=***' "
     f"{NO_PASSWORD_IN_DATABASE_URL}"),
    ({"--to-database": "nosuch://restorer@127.0.0.1/lab"},
     "error: --to-database 'nosuch://restorer@127.0.0.1/lab': unknown database dialect 'nosuch'; use e.g. "
     "sqlite:////path/to/restored.db or postgresql+psycopg://user@host/database"),
    ({"--to-files": f"s3://AKIAEXAMPLE:{PASSWORD}@bucket/files"},
     f"error: --to-files 's3://AKIAEXAMPLE:***@bucket/files' {NO_PASSWORD_IN_STORE_URL}"),
    ({"--to-files": ""}, "error: --to-files is empty; give a folder or a URL such as s3://bucket/prefix"),
    ({"--to-files": "nosuch://files"},
     "error: --to-files 'nosuch://files': Protocol not known: nosuch; use a folder path or a URL such as "
     "s3://bucket/prefix"),
    ({"SOURCE": f"ftp://reader:{PASSWORD}@archive.example/a.zip"},
     f"error: SOURCE 'ftp://reader:***@archive.example/a.zip' {NO_PASSWORD_IN_STORE_URL}"),
    ({"--to-database-password-secret": "no-such-block"},
     "error: --to-database-password-secret 'no-such-block': no Prefect secret block has that name; create "
     "it with `prefect block create secret` (or on the Blocks page of the Prefect UI)"),
]


def test_a_refused_restore_is_one_line_naming_the_option_and_starts_no_run(organization, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    sid = create(organization)["sid"]
    target_db, target_files = tmp_path / "restored.db", tmp_path / "restored-files"
    runs = restore_runs()
    for changes, expected in REFUSED_BEFORE_ANY_RUN:
        options = {"SOURCE": sid, "--to-database": f"sqlite:///{target_db}", "--to-files": str(target_files),
                   **changes}
        source = options.pop("SOURCE")
        result = labvault("restore", source, *[part for pair in options.items() for part in pair])
        assert (result.exit_code, result.stderr) == (1, expected + "\n"), changes
        assert PASSWORD not in result.output
    assert restore_runs() == runs
    assert not target_db.exists() and not target_files.exists()


def test_an_unreachable_target_database_is_named_by_its_option(organization, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    sid = create(organization)["sid"]
    unreachable = "postgresql+psycopg://nobody@127.0.0.1:9/none"
    result = labvault("restore", sid, "--to-database", unreachable, "--to-files", str(tmp_path / "files"))
    assert result.exit_code == 1
    whole = (r"error: --to-database 'postgresql\+psycopg://nobody@127\.0\.0\.1:9/none': cannot connect "
             r"\(connection failed: [^\n]*port 9 failed: Connection refused[^\n]*\); check the URL, that "
             r"the database is up and that the user may log in\n")
    assert re.fullmatch(whole, result.stderr), result.stderr
    assert not (tmp_path / "files").exists()


def damaged_copy(archive: Path, damaged: Path) -> Path:
    """The archive with one byte flipped in the middle of its largest file's stored bytes."""
    with zipfile.ZipFile(archive) as zipped:
        largest = max(zipped.infolist(), key=lambda info: info.compress_size)
    data = bytearray(archive.read_bytes())
    name_length, extra_length = struct.unpack_from("<HH", data, largest.header_offset + 26)
    data[largest.header_offset + 30 + name_length + extra_length + largest.compress_size // 2] ^= 0xFF
    damaged.write_bytes(data)
    return damaged


def test_an_archive_that_fails_verification_is_one_line_and_restores_nothing(organization, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    damaged = damaged_copy(Path(create(organization)["file_path"]), tmp_path / "damaged.zip")
    with damaged.open("rb") as stream:
        [problem] = verify_archive(stream, label=str(damaged)).problems
    target_db = f"sqlite:///{tmp_path / 'restored.db'}"
    result = labvault("restore", str(damaged), "--to-database", target_db, "--to-files", str(tmp_path / "files"))
    assert result.exit_code == 1
    assert result.stderr == f"error: archive {damaged} failed verification: {problem}; nothing was restored\n"
    assert not (tmp_path / "restored.db").exists() and not (tmp_path / "files").exists()


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_refused_restore_in_a_real_process_prints_one_line_and_nothing_else(organization, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """As a user's shell sees it: a process of its own, Prefect in ephemeral mode (its temporary
    server starting and stopping), the refusal coming from inside the flow run."""
    sid = create(organization)["sid"]
    target = ["--to-database", f"sqlite:///{tmp_path / 'restored.db'}", "--to-files", str(tmp_path / "files")]
    assert labvault("restore", sid, *target).exit_code == 0
    labvault_bin = Path(sys.executable).with_name("labvault")
    again = subprocess.run([str(labvault_bin), "restore", sid, *target], capture_output=True, text=True,
                           env={**os.environ, "PREFECT_HOME": str(tmp_path / "prefect")}, timeout=300)
    assert (again.returncode, again.stderr, again.stdout) == (1, ALREADY_HOLDS, "")


def target_state(database_url: str, files: Path) -> tuple:  # type: ignore[type-arg]
    """Every row a restore writes and every byte of the files store, to compare before/after."""
    with session_factory(database_url)() as session:
        rows = (sorted((v.sid, v.number, json.dumps(v.data, sort_keys=True)) for v in session.scalars(select(Version))),
                sorted((f.uid, f.name, f.size, f.storage_key) for f in session.scalars(select(File))))
    blobs = sorted((str(p.relative_to(files)), p.read_bytes()) for p in files.rglob("*") if p.is_file())
    return rows, blobs


def test_a_full_disk_while_restoring_is_one_line_and_leaves_the_target_as_it_was(  # type: ignore[no-untyped-def]
        organization, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A disk that fills while the blobs are written (the free-space check passed: another
    writer took the room) raises ENOSPC from a write; simulated on the target store's writes."""
    from labvault.storage import folders

    sid = create(organization)["sid"]
    target_db, target_files = f"sqlite:///{tmp_path / 'restored.db'}", tmp_path / "restored-files"
    target = ["--to-database", target_db, "--to-files", str(target_files)]
    assert labvault("restore", sid, *target).exit_code == 0
    before = target_state(target_db, target_files)

    real_write = folders._RenamingPendingWrite.write

    def write_to_a_full_disk(self, data):  # type: ignore[no-untyped-def]
        if self._partial.startswith(f"{target_files}/.restore/") and "/blobs/" in self._partial:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_write(self, data)

    monkeypatch.setattr(folders._RenamingPendingWrite, "write", write_to_a_full_disk)
    result = labvault("restore", sid, *target, "--merge", "overwrite")
    assert result.exit_code == 1
    assert result.stderr == (f"error: archive backup {sid}: the target files store is full (No space left "
                             "on device); free some space and restore again; nothing was restored\n")
    assert target_state(target_db, target_files) == before  # staging gone, every old byte and row kept
