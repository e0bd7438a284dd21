"""What the processes serving S3 are doing, for the console's operator pages: the workers
of a supervisor (vaultaire/supervisor.py), or the single daemon process itself."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from typing import Any

from attrs import frozen

__all__ = ["WorkerStatus", "proc_stat", "requests_served"]


@frozen
class WorkerStatus:
    index: int | None  # the supervisor's slot (1..N); None for the single daemon process
    pid: int | None  # None while a slot waits for its restart
    state: str  # serving, starting, stopping, killed (its loop stopped ticking), restarting, down
    restarts: int  # of this slot since the supervisor started
    uptime: float | None  # seconds since the process was spawned
    last_heartbeat: float | None = None  # seconds since its event loop last ticked (workers only)
    requests: int | None = None  # S3 requests it finished, from its own metric files
    cpu_seconds: float | None = None
    resident_bytes: int | None = None
    restart_in: float | None = None  # seconds until a dead slot's next process is spawned


WorkerStatuses = Callable[[], list[WorkerStatus]]


def proc_stat(pid: int) -> tuple[float, int] | None:
    """(CPU seconds, resident bytes) of a process, from /proc; None if it is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            fields = f.read().rsplit(b")", 1)[1].split()
    except OSError:
        return None
    ticks = os.sysconf("SC_CLK_TCK")
    page = os.sysconf("SC_PAGE_SIZE")
    # After the command name: state is field 3; utime 14, stime 15, rss 24 (1-based in proc(5)).
    return (int(fields[11]) + int(fields[12])) / ticks, int(fields[21]) * page


def requests_served(families: Iterable[Any]) -> int:
    """The sum of vaultaire_requests_total over its labels, in collected metric families."""
    return int(sum(s.value for f in families for s in f.samples if s.name == "vaultaire_requests_total"))
