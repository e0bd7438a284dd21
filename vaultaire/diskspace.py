"""Free space on a filesystem, and the reserve kept on it for deletes and reads.

On the ground floor (no imports of ours): the local driver reports it in its
health, the engine refuses writes that would go below the reserve, and the
catalog keeps a little headroom file it can give back when the disk is full.
"""

from __future__ import annotations

import errno
import os

from attrs import frozen

__all__ = ["AUTO_RESERVE", "DiskSpace", "is_full", "reserve_for", "sample"]

GIB = 2**30
# The reserve setting that means "the smaller of 1% of the filesystem and 1 GiB".
AUTO_RESERVE = -1

# What a write gets from a full (or over-quota) filesystem.
_FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})


def reserve_for(total: int, setting: int) -> int:
    """The reserve in bytes on a filesystem of ``total`` bytes, from the setting."""
    if setting == AUTO_RESERVE:
        return min(total // 100, GIB)
    return max(0, setting)


@frozen
class DiskSpace:
    path: str
    free: int  # bytes an unprivileged writer may still use
    total: int
    reserve: int
    read_only: bool

    def room_for(self, incoming: int) -> bool:
        """Would ``incoming`` more bytes leave the reserve intact?"""
        return not self.read_only and self.free - incoming >= self.reserve

    @property
    def below_reserve(self) -> bool:
        return self.free < self.reserve

    def report(self) -> dict[str, object]:
        return {
            "free_bytes": self.free,
            "total_bytes": self.total,
            "reserve_bytes": self.reserve,
            "read_only": self.read_only,
        }


def sample(path: str, reserve_setting: int) -> DiskSpace:
    """statvfs of ``path`` (blocking: call it off the reactor); raises OSError."""
    st = os.statvfs(path)
    total = st.f_blocks * st.f_frsize
    return DiskSpace(
        path=path,
        free=st.f_bavail * st.f_frsize,
        total=total,
        reserve=reserve_for(total, reserve_setting),
        read_only=bool(st.f_flag & os.ST_RDONLY),
    )


def is_full(error: BaseException | None) -> bool:
    """An OSError (or SQLite error) that says the filesystem has no room left."""
    if isinstance(error, OSError):
        return error.errno in _FULL_ERRNOS
    code = getattr(error, "sqlite_errorcode", None)
    if code is not None:
        import sqlite3

        return bool(code == sqlite3.SQLITE_FULL)
    return "database or disk is full" in str(error)
