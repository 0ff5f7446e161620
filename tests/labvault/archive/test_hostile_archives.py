"""Hand-made hostile archives against verification: each is refused with one line naming what
is wrong, never a traceback, and at a bounded cost (issue 13, items 6 to 9)."""

from __future__ import annotations

import io
import json
import os
import re
import zipfile
import zlib

import pytest

from labvault.archive.rules import ArchiveLimits
from labvault.archive.verify import verify_archive
from labvault.zipstream.format import DEFLATED, FLAG_ENCRYPTED, FLAG_UTF8, STORED
from tests.zip_forge import ORG, ArchivePlan, Forged, described, forge, forge_zip64_end, manifest

MiB = 1024 * 1024


def problems(data: bytes, limits: ArchiveLimits | None = None) -> list[str]:
    report = verify_archive(io.BytesIO(data), label="hostile.zip", limits=limits)
    assert not report.ok, "a hostile archive verified OK"
    return report.problems


def with_manifest(entries: list[Forged], lines: list[dict], **header: object) -> bytes:
    data = json.dumps(manifest(lines, **header)).encode()
    return forge(entries + [Forged(f"{ORG}/manifest.json", data, method=DEFLATED)])


def test_a_plain_forged_archive_verifies() -> None:
    """The builder's honest output passes: every refusal below is the lie, not the builder."""
    data = ArchivePlan().file("u1", b"hello").version("v1").build()
    report = verify_archive(io.BytesIO(data), label="honest.zip")
    assert report.ok, report.problems
    assert (report.versions, report.files) == (1, 1)


# --- 6: zip bombs inside the per-entry limits -------------------------------------------------

def test_many_deflated_entries_of_exactly_one_mib_are_refused_by_the_total_ratio() -> None:
    """2,048 entries of 1 MiB of zeros: each stays at the per-entry floor, the sum (2 GiB from
    about 2 MB) does not."""
    zeros = b"\0" * MiB
    body = zlib.compressobj(9, zlib.DEFLATED, -15)
    compressed = body.compress(zeros) + body.flush()
    plan = ArchivePlan()
    for number in range(2048):
        path = f"{ORG}/u{number}_zeros"
        plan.items.append((Forged(path, zeros, method=DEFLATED, body=compressed), described(path, zeros)))
    data = plan.build()
    assert len(data) < 5 * MiB
    (problem,) = problems(data)
    found = re.fullmatch(rf"archive of {len(data)} bytes would expand to (\d+) bytes, over 100 times its "
                         r"size: refused as a ZIP bomb", problem)
    assert found and int(found[1]) >= 2048 * MiB, problem  # the entries and the manifest


def test_overlapping_entries_are_refused() -> None:
    """The overlapping-local-header bomb: many directory records point into one stored entry,
    so the same bytes would be read again and again."""
    kernel = b"\0" * MiB
    big = Forged(f"{ORG}/u0_kernel", kernel)
    entries = [big] + [Forged(f"{ORG}/u{n}_copy", kernel, header_offset=0) for n in range(1, 40)]
    lines = [described(e.raw_name().decode(), kernel) for e in entries]
    data = with_manifest(entries, lines)
    found = problems(data)
    assert any("overlaps the entry before it or leaves a gap: entries must tile the archive" in p
               for p in found), found


def test_an_entry_the_directory_misplaces_is_refused() -> None:
    plan = ArchivePlan().file("u1", b"hello").file("u2", b"world")
    plan.items[1][0].header_offset = 1  # the directory lies about where u2 starts
    found = problems(plan.build())
    assert any("u2_name.bin" in p for p in found), found


def test_the_total_cap_is_a_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    from labvault.settings import get_settings

    monkeypatch.setenv("LABVAULT_ARCHIVE_MAX_BYTES", "1000")
    limits = ArchiveLimits.with_max_total(get_settings().archive_max_bytes)
    data = ArchivePlan().file("u1", b"x" * 2000).build()
    assert problems(data, limits)[0].startswith("archive would expand to ")
    assert "over the limit of 1000 (LABVAULT_ARCHIVE_MAX_BYTES)" in problems(data, limits)[0]


# --- 8: a deflate stream longer than declared ---------------------------------------------------

def deflated(data: bytes) -> bytes:
    compressor = zlib.compressobj(6, zlib.DEFLATED, -15)
    return compressor.compress(data) + compressor.flush()


def test_a_deflate_stream_that_expands_past_its_declared_size_is_refused() -> None:
    """Declared 5 bytes with the CRC and SHA-256 of those 5, the stream holds 5,000: unzip
    would extract them all."""
    shown, hidden = b"hello", b"hello" + b"A" * 4995
    path = f"{ORG}/u1_name.bin"
    entry = Forged(path, shown, method=DEFLATED, body=deflated(hidden))
    found = problems(with_manifest([entry], [described(path, shown)]))
    assert any(p.startswith(f"entry {path!r} is larger than its declared size of 5 bytes") for p in found), found


def test_data_after_the_end_of_a_deflate_stream_is_refused() -> None:
    path = f"{ORG}/u1_name.bin"
    entry = Forged(path, b"hello", method=DEFLATED, body=deflated(b"hello") + b"smuggled")
    found = problems(with_manifest([entry], [described(path, b"hello")]))
    assert any(p == f"entry {path!r} has data after the end of its deflate stream" for p in found), found


def test_a_deflate_stream_cut_short_is_refused() -> None:
    path = f"{ORG}/u1_name.bin"
    data = bytes(range(256)) * 40
    entry = Forged(path, data, method=DEFLATED, body=deflated(data)[:-20])
    found = problems(with_manifest([entry], [described(path, data)]))
    assert any(p.startswith(f"entry {path!r} ") for p in found), found


# --- 9: what used to be tracebacks: one line each -------------------------------------------------

def test_an_entry_name_that_is_not_utf8_is_refused() -> None:
    name = f"{ORG}/u1_".encode() + b"\xff\xfe.bin"
    entry = Forged(name, b"x", flags=FLAG_UTF8)
    found = problems(with_manifest([entry], [described(f"{ORG}/u1_x.bin", b"x")]))
    assert found == ["not a readable zip archive (truncated or corrupt): entry name "
                     "b'org-h/u1_\\xff\\xfe.bin' is not valid UTF-8"]


@pytest.mark.parametrize(("header", "message"), [
    ({"counts": [1, 2]}, "manifest is malformed: counts: Input should be an object"),
    ({"backup": "bk-h"}, "manifest is malformed: backup: Input should be an object"),
    ({"created": 12}, "manifest is malformed: created: Input should be a valid datetime"),
    ({"format_version": 2}, "manifest is malformed: format_version: Input should be 1"),
    ({"total_bytes": 1e30}, "manifest is malformed: total_bytes: Input should be a valid integer"),
])
def test_a_manifest_header_of_the_wrong_shape_is_refused(header: dict, message: str) -> None:
    data = ArchivePlan(header=header).file("u1", b"hello").build()
    assert problems(data) == [message]


def test_a_manifest_path_that_is_a_number_is_refused() -> None:
    path = f"{ORG}/u1_name.bin"
    data = with_manifest([Forged(path, b"hello")], [{**described(path, b"hello"), "path": 12}])
    assert problems(data) == ["manifest entry #1 is malformed: path: Input should be a valid string"]


def test_deeply_nested_json_in_the_manifest_is_refused() -> None:
    path = f"{ORG}/u1_name.bin"
    text = json.dumps(manifest([described(path, b"hello")])).replace('"entries": [', '"deep": ' + "[" * 5000
                                                                      + "]" * 5000 + ', "entries": [', 1)
    data = forge([Forged(path, b"hello"), Forged(f"{ORG}/manifest.json", text.encode(), method=DEFLATED)])
    found = problems(data)
    assert found[0].startswith("manifest is not JSON: ") or "recursion" in found[0], found


def test_an_encrypted_entry_is_refused() -> None:
    path = f"{ORG}/u1_name.bin"
    data = with_manifest([Forged(path, b"hello", flags=FLAG_UTF8 | FLAG_ENCRYPTED)], [described(path, b"hello")])
    assert f"entry {path!r} is encrypted; labvault archives never are" in problems(data)


@pytest.mark.parametrize("method", [6, 9, 93, 99])
def test_compression_methods_other_than_stored_and_deflated_are_refused(method: int) -> None:
    path = f"{ORG}/u1_name.bin"
    data = with_manifest([Forged(path, b"hello", method=method, body=b"hello")], [described(path, b"hello")])
    assert (f"entry {path!r} uses compression method {method}; only stored and deflated are read"
            in problems(data))


def test_a_zip64_offset_of_two_to_the_63_is_refused() -> None:
    path = f"{ORG}/u1_name.bin"
    data = with_manifest([Forged(path, b"hello", zip64_offset=2**63)], [described(path, b"hello")])
    found = problems(data)
    assert found == ["not a readable zip archive (truncated or corrupt): entry 'org-h/u1_name.bin' is "
                     "said to lie past the start of the central directory"]


def test_a_zip64_end_record_pointing_far_away_is_refused() -> None:
    honest = ArchivePlan().file("u1", b"hello").build()
    end = honest.rfind(b"PK\x05\x06")
    data = honest[:end] + forge_zip64_end(2, 100, 2**63)
    found = problems(data)
    assert found[0].startswith("not a readable zip archive (truncated or corrupt): ")


def test_dev_zero_is_refused_without_reading_forever() -> None:
    with open("/dev/zero", "rb") as source:
        report = verify_archive(source, label="/dev/zero")
    assert report.problems == ["not a readable zip archive (truncated or corrupt): "
                               "no end of central directory record"]


def test_a_manifest_line_longer_than_the_limit_is_refused() -> None:
    """Past 4 MiB a manifest must be laid out one entry per line; a single huge line is
    refused as soon as it passes 64 KiB, however large it claims to be."""
    path = f"{ORG}/u1_name.bin"
    huge = b'{"entries": ["' + os.urandom(3 * MiB).hex().encode() + b'"]}'  # compresses 2:1, no bomb
    data = forge([Forged(path, b"hello"), Forged(f"{ORG}/manifest.json", huge, method=DEFLATED)])
    found = problems(data)
    assert found == ["manifest has a line longer than 65536 bytes; labvault writes one entry per line"]


def test_stored_entries_are_read_exactly_as_declared() -> None:
    """A stored entry whose directory size and compressed size disagree is refused."""
    path = f"{ORG}/u1_name.bin"
    entry = Forged(path, b"hello", method=STORED, size=4)
    found = problems(with_manifest([entry], [described(path, b"hello")]))
    assert any(p.startswith(f"entry {path!r}") for p in found), found


def test_a_manifest_entry_of_unknown_kind_is_refused() -> None:
    path = f"{ORG}/u1_name.bin"
    data = with_manifest([Forged(path, b"hello")], [described(path, b"hello", kind="script")])
    assert problems(data)[0].startswith(f"manifest entry {path!r} is malformed: ")



def test_a_manifest_listing_thousands_of_missing_paths_gets_a_hundred_lines_and_a_count() -> None:
    """Re-zipped (so the full check runs) and listing 5,000 entries that are not there."""
    plan = ArchivePlan().file("u1", b"hello")
    lines = [described(f"{ORG}/missing-{n:05d}_x", b"") for n in range(5000)]
    manifest_first = with_manifest([Forged(f"{ORG}/u1_name.bin", b"hello")], lines + [plan.items[0][1]])
    found = problems(rezip_manifest_first(manifest_first))
    assert len(found) == 101 and found[-1].startswith("(and ") and found[-1].endswith(" more problems)")
    assert found[0] == f"entry '{ORG}/missing-00000_x' is in the manifest but missing from the archive"


def rezip_manifest_first(data: bytes) -> bytes:
    with zipfile.ZipFile(io.BytesIO(data)) as old:
        infos = sorted(old.infolist(), key=lambda info: not info.filename.endswith("manifest.json"))
        out = io.BytesIO()
        with zipfile.ZipFile(out, "w") as new:
            for info in infos:
                new.writestr(info, old.read(info))
    return out.getvalue()
