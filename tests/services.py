"""What tests that start real services share: free loopback ports, and the verdict when a
service is missing (a failure in CI, which must run every leg; a skip with its reason elsewhere)."""

from __future__ import annotations

import os
import socket
from contextlib import ExitStack
from typing import NoReturn

import pytest


def free_ports(count: int) -> list[int]:
    """`count` distinct loopback ports nobody listens on (all held open while chosen)."""
    with ExitStack() as stack:
        ports = []
        for _ in range(count):
            probe = stack.enter_context(socket.socket())
            probe.bind(("127.0.0.1", 0))
            ports.append(probe.getsockname()[1])
        return ports


def free_port() -> int:
    return free_ports(1)[0]


def unavailable(reason: str, leg: str) -> NoReturn:
    """Fail in CI (`CI=true`) naming the `leg` it must run; skip with the reason elsewhere."""
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason} (CI must run the {leg} leg)", pytrace=False)
    pytest.skip(reason)
