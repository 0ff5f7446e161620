"""The words both doors use for a backup's fields: what an admin reads in the CLI's table and on
the Backups page."""

from __future__ import annotations

from decimal import Decimal

from labvault.backup_text import EMPTY, cost_text, progress_text, size_text


def test_a_cost_reads_to_the_cent_and_is_absent_until_charged() -> None:
    assert cost_text(Decimal("12.5"), "CHF") == "12.50 CHF"
    assert cost_text(0.004, "EUR") == "0.00 EUR"
    assert cost_text(None, "CHF") is None


def test_progress_counts_items_and_says_when_the_total_is_not_known_yet() -> None:
    assert progress_text(3, 10) == "3 of 10 items"
    assert progress_text(None, None) == "0 of ? items"
    assert progress_text(0, 0) == "0 of 0 items"


def test_a_size_is_in_decimal_units_or_the_empty_mark() -> None:
    assert size_text(1_500_000) == "1.5 MB"
    assert size_text(None) == EMPTY == "—"
