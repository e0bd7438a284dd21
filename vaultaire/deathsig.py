"""Children that die with their parent (PR_SET_PDEATHSIG) and are signalled safely: workers and rclone."""

from __future__ import annotations

import ctypes
import os
import signal
from typing import Any

_PR_SET_PDEATHSIG = 1


def die_with_parent(parent: int) -> None:
    """Ask Linux to SIGKILL this process when ``parent`` dies, however it dies.

    A kill -9 of the daemon must not leave orphans holding ports and writing
    to its data. The setting survives execve, so a small wrapper can set it
    and then exec a program that cannot (rclone, a Go binary).
    """
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):
        pass  # not Linux: the parent's stop still ends its children
    if os.getppid() != parent:  # it died before prctl took effect
        os._exit(1)


def signal_child(transport: Any, name: str) -> None:
    """Send ``name`` (e.g. "TERM") to a child process through its transport, if it still runs."""
    if transport is None:
        return  # never started
    try:
        transport.signalProcess(name)
    except Exception:
        pass  # already gone


def main(argv: list[str]) -> None:
    """``python -m vaultaire.deathsig PARENT PROGRAM [ARGS...]``: exec PROGRAM tied to PARENT.

    It also gets a session of its own, so a Ctrl-C meant for the daemon's
    terminal does not stop it behind the daemon's back: the daemon stops it.
    """
    parent, program, *args = argv
    os.setsid()
    die_with_parent(int(parent))
    os.execv(program, [program, *args])


if __name__ == "__main__":
    import sys

    main(sys.argv[1:])
