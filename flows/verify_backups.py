"""verify-backups: the periodic check of kept archives against their manifests (EU Annex 11 §7.2)."""

from dataclasses import asdict
from typing import Annotated, Any

from prefect import flow
from pydantic import Field

from flows.outcome import fails_with_reason
from flows.parameters import parameter
from labvault.errors import PermanentError
from tasks.verification_steps import report, tell_admins, verify_due


@flow(name="verify-backups", flow_run_name="verify backups")
@fails_with_reason
def verify_backups(
    older_than_days: Annotated[int, Field(ge=0, le=3650)] = parameter(
        30, "Checked more than (days) ago", "Check Completed backups whose last check is older than "
        "this; 0 checks every kept backup."),
    max_gigabytes: Annotated[int, Field(ge=1, le=1_000_000)] = parameter(
        100, "Most gigabytes per run", "Stop before reading more than this (the first archive is "
        "always read); the rest waits for the next run, oldest check first."),
) -> dict[str, Any]:
    """Read due archives back and check every entry against the manifest; record the result on
    each backup, email the admins of any that no longer match, and fail the run if any do."""
    result = verify_due(older_than_days, max_gigabytes)
    tell_admins(result)
    report(result)
    if result.failed:
        raise PermanentError(f"{len(result.failed)} archive(s) no longer match their manifest: "
                             f"{', '.join(result.failed)}; their admins were emailed")
    return asdict(result)
