"""A backup's fields and a cost estimate as people read them, worded once for every door.

The CLI lays them out as a terminal table and the Backups page as HTML, but both take the words
for a cost, a size, a run's progress, a legal hold and an estimate's costs from here. Where a
door words a field its own way on purpose (the CLI's list says "(legal hold)" in a narrow
column; the page shows "?" for a progress total of 0, the CLI "0"), the door says so.
"""

from __future__ import annotations

from decimal import Decimal

from labvault.pricing import Estimate
from labvault.sizes import human_size

EMPTY = "—"  # a field with no value yet
LEGAL_HOLD = "on legal hold"


def size_text(size: int | None) -> str:
    """A byte count in decimal units (as storage is priced), or the empty mark."""
    return EMPTY if size is None else human_size(size)


def cost_text(cost: Decimal | float | None, currency: str) -> str | None:
    """A backup's charged cost, to the cent; None until it is charged."""
    return None if cost is None else f"{cost:.2f} {currency}"


def progress_text(done: int | None, total: int | None) -> str:
    """How far a running backup is: items written of items to write ("?" until it knows)."""
    return f"{done or 0} of {total if total is not None else '?'} items"


def estimate_cost_text(estimate: Estimate) -> str:
    return f"{estimate.cost} {estimate.currency}"


def storage_cost_text(estimate: Estimate) -> str:
    """What keeping the backup costs: per month, and for the whole retention."""
    currency = estimate.currency
    return (f"{estimate.storage_cost_per_month} {currency} per month; {estimate.storage_cost_for_retention} "
            f"{currency} for the {estimate.retention_days} days it is kept")
