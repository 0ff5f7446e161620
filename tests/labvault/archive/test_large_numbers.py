"""ZIP64 for real: 70,000 files in one backup, and a file over 4 GiB (sparse at the source, so
it costs no disk there), backed up and verified. The archives are the session's `big_archives`,
which the reader-compatibility tests read too."""

from __future__ import annotations

import os
import zipfile
from pathlib import Path

from labvault.archive.verify import verify_archive
from tests.big_archives import HUGE_FILE_BYTES, MANY_FILES

ZIP64_END_OF_CENTRAL_DIRECTORY = b"PK\x06\x06"


def verified(path: Path) -> None:
    with path.open("rb") as source:
        report = verify_archive(source, label=str(path))
    assert report.ok, report.problems[:5]


def test_seventy_thousand_files(big_archives) -> None:  # type: ignore[no-untyped-def]
    path = big_archives("70001 entries")
    with zipfile.ZipFile(path) as archive:
        names = archive.namelist()
    assert sum(name.startswith("org-many/u") for name in names) == MANY_FILES
    assert len(names) > MANY_FILES + 1  # and the versions, and the manifest
    with path.open("rb") as raw:
        raw.seek(-200, os.SEEK_END)
        assert ZIP64_END_OF_CENTRAL_DIRECTORY in raw.read(), "more than 65,535 entries needs ZIP64"
    verified(path)


def test_a_file_over_four_gib(big_archives) -> None:  # type: ignore[no-untyped-def]
    path = big_archives("over 4 GiB")
    with zipfile.ZipFile(path) as archive:
        assert archive.getinfo("org-big/huge_scan.raw").file_size == HUGE_FILE_BYTES
    verified(path)
