"""The free-space check keeps a recent sample while the disks are far from their reserve, and samples
every write near it: no thread hop per PUT on a roomy disk, and no refusal later than before."""

from __future__ import annotations

from typing import Any

import pytest
import pytest_twisted
from twisted.internet.defer import succeed

import vaultaire.engine.space as space_module
from vaultaire.diskspace import DiskSpace
from vaultaire.engine.space import FAR_ABOVE, SAMPLE_SECONDS, SpaceGuard
from vaultaire.errors import InsufficientStorage

RESERVE = 10 * 2**20


class Disk:
    """statvfs, as the guard sees it: free bytes the test sets, and how often it was asked."""

    def __init__(self, free: int) -> None:
        self.free = free
        self.samples = 0

    def sample(self, path: str, reserve_setting: int) -> DiskSpace:
        self.samples += 1
        return DiskSpace(path=path, free=self.free, total=100 * 2**30, reserve=RESERVE, read_only=False)


@pytest.fixture
def clock() -> list[float]:
    return [1000.0]


def guard(monkeypatch: pytest.MonkeyPatch, disk: Disk, clock: list[float]) -> SpaceGuard:
    monkeypatch.setattr(space_module, "sample", disk.sample)

    def run(fn: Any, *args: Any) -> Any:
        return succeed(fn(*args))

    return SpaceGuard("/catalog", {}, RESERVE, run, clock=lambda: clock[0])


@pytest_twisted.ensureDeferred
async def test_a_roomy_disk_is_sampled_a_few_times_a_second_not_per_write(monkeypatch, clock) -> None:
    disk = Disk(free=RESERVE + FAR_ABOVE + 100 * 2**20)
    g = guard(monkeypatch, disk, clock)
    for _ in range(50):
        await g.admit("default", 4096)
    assert disk.samples == 1
    clock[0] += SAMPLE_SECONDS
    await g.admit("default", 4096)
    assert disk.samples == 2
    # A write that would bring the disk near its reserve is checked against a fresh sample.
    await g.admit("default", 200 * 2**20)
    assert disk.samples == 3


@pytest_twisted.ensureDeferred
async def test_near_the_reserve_every_write_samples_and_is_refused_at_once(monkeypatch, clock) -> None:
    disk = Disk(free=RESERVE + 50 * 2**20)
    g = guard(monkeypatch, disk, clock)
    await g.admit("default", 4096)
    await g.admit("default", 4096)
    assert disk.samples == 2
    disk.free = RESERVE + 1000  # filled up by someone else meanwhile, within the same instant
    with pytest.raises(InsufficientStorage):
        await g.admit("default", 4096)
    assert disk.samples == 3
