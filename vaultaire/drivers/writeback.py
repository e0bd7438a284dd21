"""Has the kernel start writing a blob's bytes to disk while the rest of it arrives.

A blob is fsynced before its write is acknowledged. Left alone, the kernel keeps
an upload's bytes dirty in memory until that fsync (its background writeback
starts only past gigabytes, or after 30 s), so the fsync must write all of them
while the client waits. Asking for writeback of every stretch as soon as it is
written (Linux's ``sync_file_range`` with ``SYNC_FILE_RANGE_WRITE``, which starts
the writes and does not wait for them) overlaps the disk's work with the upload:
the fsync finds little left. PostgreSQL's ``*_flush_after`` settings do the same.

Durability does not depend on it: only the fsync promises anything, and a failed
or missing ``sync_file_range`` just leaves all the work to it.
"""

from __future__ import annotations

import ctypes
import sys
from collections.abc import Callable

SYNC_FILE_RANGE_WRITE = 2
# Bytes written between two requests: large enough that a small blob never asks.
STRETCH = 8 * 1024 * 1024
# Writeback is asked up to a multiple of this only, so never for part of a page. A page under
# writeback cannot change until the disk has it: a range that ended inside a page (an
# encrypted blob's packages are 16 bytes longer than 64 KiB) made the next write() wait.
ALIGN = 64 * 1024

StartWriteback = Callable[[int, int, int, int], int]


def _load() -> StartWriteback | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        call = ctypes.CDLL(None, use_errno=True).sync_file_range
    except (OSError, AttributeError):
        return None
    # A CDLL function drops the GIL while it runs, as os.write does.
    call.argtypes = [ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint]
    call.restype = ctypes.c_int
    return call


sync_file_range: StartWriteback | None = _load()


class Writeback:
    """Counts the bytes written to one file and starts the writeback of each ``stretch``."""

    def __init__(self, stretch: int = STRETCH, start: StartWriteback | None = None) -> None:
        self._stretch = stretch
        self._start = start if start is not None else sync_file_range
        self._written = 0
        self._asked = 0  # the bytes before this offset were handed to the kernel's writeback

    def wrote(self, fd: int, count: int) -> None:
        """``count`` more bytes were written to ``fd`` (in order, from offset 0)."""
        self._written += count
        if self._start is None or self._written - self._asked < self._stretch:
            return
        end = self._written - self._written % ALIGN  # what is past it waits for the next stretch
        # The result is not checked: whatever the kernel did not start, the fsync writes.
        self._start(fd, self._asked, end - self._asked, SYNC_FILE_RANGE_WRITE)
        self._asked = end
