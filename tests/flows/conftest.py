import pytest


@pytest.fixture(autouse=True)
def _under_prefect(prefect_harness: None) -> None:
    """Every flow test runs against the session's Prefect test harness."""
