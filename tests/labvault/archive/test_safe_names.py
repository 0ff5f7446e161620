import unicodedata

import pytest

from labvault.archive.safe_names import MAX_NAME_BYTES, file_entry_name, safe_component

HOSTILE_NAMES = [
    "../../etc/passwd",
    "..",
    ".",
    "",
    "   ",
    "/etc/passwd",
    "C:\\Windows\\system32\\evil.dll",
    "a/../../b.txt",
    "bell\x07 tab\t newline\n.txt",
    "rtl\u202egpj.exe",
    "zero\u200bwidth.txt",
    "x" * 300 + ".pdf",
    "é" * 300,
    'quote"star*colon:pipe|.txt',
    "..hidden",
    "trailing dots...",
]


@pytest.mark.parametrize("name", HOSTILE_NAMES)
def test_a_hostile_name_becomes_one_safe_component(name: str) -> None:
    safe = safe_component(name)
    assert safe
    assert "/" not in safe and "\\" not in safe
    assert ".." not in safe
    assert safe not in (".", "..")
    assert not any(unicodedata.category(ch)[0] == "C" for ch in safe)
    assert len(safe.encode("utf-8")) <= MAX_NAME_BYTES
    assert safe == safe.strip(" .")


def test_readable_names_are_kept() -> None:
    assert safe_component("Résumé de l'expérience.pdf") == "Résumé de l'expérience.pdf"
    assert safe_component("数据 表 2024.csv") == "数据 表 2024.csv"
    assert safe_component("plate reader/run 3.txt") == "plate reader_run 3.txt"


def test_truncation_keeps_the_extension_and_whole_characters() -> None:
    safe = safe_component("é" * 300 + ".pdf")
    assert safe.endswith(".pdf")
    assert len(safe.encode("utf-8")) <= MAX_NAME_BYTES
    safe.encode("utf-8").decode("utf-8")


def test_decomposed_and_composed_accents_give_the_same_name() -> None:
    assert safe_component("Cafe\u0301.txt") == safe_component("Caf\u00e9.txt")


def test_file_entry_name_is_prefixed_by_organization_and_uid() -> None:
    assert file_entry_name("org-1", "7f3a", "../x/report.pdf") == "org-1/7f3a__x_report.pdf"


@pytest.mark.parametrize("name", ["abc.", "a.b.", "-x", "x" * 200, "x" * 201, ".x", "a..b"])
def test_the_fast_path_agrees_with_the_full_rules(name: str) -> None:
    import labvault.archive.safe_names as safe_names

    full = safe_names._PLAIN
    try:
        safe_names._PLAIN = __import__("re").compile(r"(?!)")  # never matches: full rules only
        expected = safe_component(name)
    finally:
        safe_names._PLAIN = full
    assert safe_component(name) == expected
