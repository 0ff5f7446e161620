"""The embedded default as a new user meets it: a fresh PREFECT_HOME, no analytics setting."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).parents[2]


def fresh_labvault(tmp_path: Path, *args: str, **env_changes: str) -> subprocess.CompletedProcess[str]:
    """`labvault ARGS` as a new user runs it: no PREFECT_* or LABVAULT_* setting but its homes."""
    env = {key: value for key, value in os.environ.items()
           if not key.startswith(("PREFECT_", "LABVAULT_"))}
    env.update(PREFECT_HOME=str(tmp_path / "prefect"), LABVAULT_HOME=str(tmp_path / "labvault"),
               **env_changes)
    return subprocess.run([str(Path(sys.executable).with_name("labvault")), *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)


def test_the_demo_on_a_fresh_prefect_home_prints_nothing_on_stderr(tmp_path: Path) -> None:
    """Prefect's analytics, on by default, printed telemetry errors (or 130 lines of `database
    is locked`) on a first run; labvault turns them off unless the user turned them on."""
    done = fresh_labvault(tmp_path, "demo")
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    assert "Completed" in done.stdout


def test_a_temporary_server_too_slow_to_start_is_one_line(tmp_path: Path) -> None:
    """Under load the temporary server overran Prefect's 20 s; labvault waits 90 s by default,
    and a server slower than the setting says so in one line (here: a 1 s setting)."""
    done = fresh_labvault(tmp_path, "expire", PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS="1")
    assert (done.returncode, done.stdout) == (1, "")
    assert done.stderr == (
        "error: Prefect's temporary server did not start within 1 s (the machine may be busy); raise "
        "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS, or set PREFECT_API_URL to a running "
        "Prefect server\n")


def test_an_unreachable_prefect_server_is_one_line(tmp_path: Path) -> None:
    from tests.conftest import free_port

    url = f"http://127.0.0.1:{free_port()}/api"
    done = fresh_labvault(tmp_path, "expire", PREFECT_API_URL=url)
    assert (done.returncode, done.stdout) == (1, "")
    assert done.stderr == (f"error: cannot reach the Prefect API at {url}; start that server, or unset "
                           "PREFECT_API_URL to run on a temporary one\n")

