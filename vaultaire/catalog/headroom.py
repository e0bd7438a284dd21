"""A few MiB kept beside the catalog so that a delete can commit on a full disk.

SQLite needs room to write a transaction, even one that only deletes rows
(its write-ahead log grows first). If something fills the disk completely,
a DELETE would fail with "database or disk is full" and the disk could not
be emptied through S3. So a placeholder file of ``SIZE`` bytes sits next to
the catalog: when a write meets a full disk it is removed and the write is
retried once; it is made again, by the process that does the periodic work,
once the disk has room above its reserve.

The file is at most half the reserve: once released, the disk is still
below its reserve, so new writes stay refused and cannot eat the room the
deletes were given.
"""

from __future__ import annotations

import os

from twisted.logger import Logger

from vaultaire.diskspace import sample

__all__ = ["SIZE", "Headroom"]

SIZE = 4 * 2**20
MIN_SIZE = 64 * 2**10  # a few transactions' worth of write-ahead log

log = Logger()


class Headroom:
    def __init__(self, path: str, reserve_setting: int, size: int = SIZE) -> None:
        self.path = path
        self.reserve_setting = reserve_setting
        self._size = size

    def release(self) -> bool:
        """Give the space back (blocking); True if there was any to give."""
        try:
            size = os.stat(self.path).st_size
            os.unlink(self.path)
        except FileNotFoundError:
            return False
        log.warn("the catalog's disk is full: released {size} bytes of headroom so deletes can commit", size=size)
        return True

    def restore(self) -> bool:
        """Make the file again if the disk has room for it above the reserve (blocking); True if made."""
        if os.path.exists(self.path):
            return False
        directory = os.path.dirname(self.path)
        space = sample(directory, self.reserve_setting)
        size = min(self._size, space.reserve // 2)
        if size < MIN_SIZE or space.read_only or not space.room_for(size):
            return False  # no reserve (none wanted), or no room for it yet
        tmp = f"{self.path}.{os.getpid()}.tmp"
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
            try:
                # Allocated blocks, not a sparse file: the point is to hold real space.
                os.posix_fallocate(fd, 0, size)
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(tmp, self.path)
        except OSError:
            try:
                os.unlink(tmp)
            except FileNotFoundError:
                pass
            return False
        return True
