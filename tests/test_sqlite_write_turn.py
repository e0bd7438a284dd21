"""Processes sharing an SQLite catalog take turns to write through a lock the kernel hands on
(catalog/sqlite_write_lock.py), not SQLite's busy handler, which sleeps up to 100 ms a try."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest_twisted
from twisted.internet import reactor

from vaultaire.catalog.sqlite import SQLiteCatalog
from vaultaire.sealing import SecretBox

HOLD = """
import fcntl, os, sys, time
fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT)
fcntl.flock(fd, fcntl.LOCK_EX)
print("held", flush=True)
time.sleep(float(sys.argv[2]))
print("released", time.time(), flush=True)
"""


@pytest_twisted.ensureDeferred
async def test_a_write_waits_for_another_process_turn_and_goes_at_once_after(tmp_path: Path) -> None:
    path = str(tmp_path / "catalog.db")
    catalog = SQLiteCatalog(path, reactor, SecretBox(os.urandom(32)))  # type: ignore[arg-type]  # the global reactor provides IReactorFromThreads
    await catalog.start()
    try:
        await catalog.ensure_tenant("first")  # opens the file and its turn
        holder = subprocess.Popen(
            [sys.executable, "-c", HOLD, path + ".write-turn", "0.5"], stdout=subprocess.PIPE, text=True
        )
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "held"
        t0 = time.time()
        await catalog.ensure_tenant("second")
        done = time.time()
        released = float(holder.stdout.readline().split()[1])
        holder.wait(timeout=10)
        assert done >= released  # it waited for the other process's turn
        assert done - t0 >= 0.3
        assert done - released < 0.5  # handed on by the kernel, not found by polling
        assert (await catalog.tenant("second")) is not None
    finally:
        await catalog.stop()
