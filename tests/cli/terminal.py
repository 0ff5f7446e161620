"""Running `labvault` on a real pseudo-terminal, as a person at a keyboard would."""

from __future__ import annotations

import os
import pty
import sys
import time
from pathlib import Path


def on_terminal(*args: str, answer: tuple[bytes, bytes] | None = None, timeout: float = 120) -> tuple[str, int]:
    """Everything the command wrote to the terminal, and its exit code. `answer` is (prompt,
    reply): the reply is typed once the prompt has appeared."""
    labvault_bin = Path(sys.executable).with_name("labvault")
    pid, fd = pty.fork()
    if pid == 0:  # the child: the command on a terminal
        os.execve(str(labvault_bin), [str(labvault_bin), *args], dict(os.environ))
    output = b""
    deadline = time.monotonic() + timeout
    if answer is not None:
        prompt, reply = answer
        while prompt not in output and time.monotonic() < deadline:
            output += os.read(fd, 4096)
        os.write(fd, reply)
    while time.monotonic() < deadline:
        try:
            chunk = os.read(fd, 4096)
        except OSError:
            break
        if not chunk:
            break
        output += chunk
    _, status = os.waitpid(pid, 0)
    return output.decode(errors="replace"), os.waitstatus_to_exitcode(status)
