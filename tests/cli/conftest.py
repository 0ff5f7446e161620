import pytest


@pytest.fixture(autouse=True)
def _under_prefect(prefect_harness: None) -> None:
    """Every CLI test (commands run flows) runs against the session's Prefect test harness."""
