"""Writes refused before their body is read when a disk is below its free-space reserve.

A full data disk must still serve reads, listings and deletes, and a delete
must be able to commit and free space. So new bytes stop at a reserve: the
catalog's filesystem and the filesystem of every local driver a placement
writes to are sampled (``statvfs``, off the reactor) when a write starts,
with the size the client announced. Like the quota's first check, this runs
before ``100 Continue``: a refused client never sends its body.

The reserve is a margin, not a lock: uploads already streaming and bodies of
unknown size may still eat into it; the local driver answers a truly full
disk with the same error, and the catalog keeps headroom to delete.

A sample is used again for ``SAMPLE_SECONDS`` while every disk in it is more than
``FAR_ABOVE`` above its reserve (past what the write announces): a busy server then
samples a few times a second, not once per write, and saves a thread hop per PUT. Near
the reserve every write samples afresh, so a refusal comes where it always came.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from twisted.internet.defer import Deferred

from vaultaire.diskspace import DiskSpace, sample
from vaultaire.drivers.interface import Driver, is_composite, is_on_local_disk
from vaultaire.errors import InsufficientStorage

__all__ = ["SpaceGuard", "describe_shortage", "local_roots"]

Run = Callable[..., Deferred[Any]]

SAMPLE_SECONDS = 0.5
FAR_ABOVE = 2**30


def local_roots(driver: Driver) -> list[str]:
    """The directories a placement writes to on local disks: its own, or its members'."""
    if is_on_local_disk(driver):
        return [driver.disk_root]
    if is_composite(driver):
        return [r for member in driver.members for r in local_roots(member)]
    return []


def _mib(n: int) -> str:
    return f"{n / 2**20:.1f} MiB"


def describe_shortage(space: DiskSpace, incoming: int) -> str:
    if space.read_only:
        return "The server's disk is read-only; writes are refused until it is writable again."
    wanted = f" for {_mib(incoming)} more" if incoming else ""
    return (
        f"The server's disk is below its free-space reserve{wanted}: {_mib(space.free)} free,"
        f" {_mib(space.reserve)} kept free so reads and deletes keep working. Delete objects"
        " (or ask the operator for more disk) and retry."
    )


class SpaceGuard:
    def __init__(
        self,
        catalog_dir: str | None,
        drivers: Mapping[str, Any],
        reserve: int,
        run: Run,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._catalog_dir = catalog_dir
        self._drivers = drivers
        self._reserve = reserve
        self._run = run
        self._clock = clock
        self._kept: dict[tuple[str, ...], tuple[float, list[DiskSpace]]] = {}  # paths: (when, their sample)

    def _paths(self, placement: str) -> Sequence[str]:
        paths = list(local_roots(self._drivers[placement])) if placement in self._drivers else []
        if self._catalog_dir is not None:
            paths.append(self._catalog_dir)
        return paths

    def _sample(self, paths: Sequence[str]) -> list[DiskSpace]:
        spaces = []
        for path in paths:
            try:
                spaces.append(sample(path, self._reserve))
            except OSError:
                pass  # not there (yet): the write itself will say what is wrong
        return spaces

    async def short(self, placement: str) -> bool:
        """Is a local disk of this placement below its reserve (so freeing its blobs now helps)?"""
        roots = local_roots(self._drivers[placement]) if placement in self._drivers else []
        if not roots:
            return False
        spaces = await self._spaces(roots, 0)
        return any(space.below_reserve for space in spaces)

    async def admit(self, placement: str, incoming: int | None) -> None:
        """Raise InsufficientStorage if ``incoming`` bytes would take a disk below its reserve."""
        paths = self._paths(placement)
        if not paths:
            return  # only remote stores: their own problem, answered as their errors
        spaces = await self._spaces(paths, incoming or 0)
        for space in spaces:
            if not space.room_for(incoming or 0):
                raise InsufficientStorage(describe_shortage(space, incoming or 0))

    async def _spaces(self, paths: Sequence[str], incoming: int) -> list[DiskSpace]:
        """A sample of ``paths``: the one kept, while it is recent and far from every reserve."""
        key = tuple(paths)
        kept = self._kept.get(key)
        now = self._clock()
        if kept is not None and now - kept[0] < SAMPLE_SECONDS:
            if all(not space.read_only and space.free - incoming - space.reserve > FAR_ABOVE for space in kept[1]):
                return kept[1]
        spaces: list[DiskSpace] = await self._run(self._sample, paths)
        self._kept[key] = (now, spaces)
        return spaces
