"""A large blob on the local driver has the kernel's writeback started as it is written."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
import pytest_twisted
from driverio import put
from twisted.internet import reactor

from vaultaire.drivers import writeback
from vaultaire.drivers.local import LocalDriver
from vaultaire.drivers.writeback import ALIGN, STRETCH, SYNC_FILE_RANGE_WRITE, Writeback

MIB = 2**20


class Recorder:
    """Stands in for sync_file_range: records each request, then makes it (when ``real``)."""

    def __init__(self, real: writeback.StartWriteback | None = None) -> None:
        self.calls: list[tuple[int, int, int]] = []
        self.real = real

    def __call__(self, fd: int, offset: int, count: int, flags: int) -> int:
        self.calls.append((offset, count, flags))
        return self.real(fd, offset, count, flags) if self.real is not None else 0


def test_each_stretch_written_is_handed_to_writeback_once_in_order() -> None:
    recorder = Recorder()
    wb = Writeback(stretch=4 * MIB, start=recorder)
    for size in (MIB, MIB, MIB):
        wb.wrote(7, size)
    assert recorder.calls == []  # less than a stretch: left to the fsync
    wb.wrote(7, 3 * MIB)  # 6 MiB written
    wb.wrote(7, MIB)
    wb.wrote(7, 5 * MIB)  # 12 MiB written
    assert recorder.calls == [(0, 6 * MIB, SYNC_FILE_RANGE_WRITE), (6 * MIB, 6 * MIB, SYNC_FILE_RANGE_WRITE)]


def test_writeback_is_asked_for_whole_pages_only() -> None:
    # A page under writeback cannot change until the disk has it: a range ending inside a page
    # made the next write wait (an encrypted blob's writes are never page-aligned).
    recorder = Recorder()
    wb = Writeback(stretch=4 * MIB, start=recorder)
    package = 64 * 1024 + 16  # a sealed package
    for _ in range(130):
        wb.wrote(7, package)
    written = 130 * package
    assert recorder.calls, "over two stretches were written"
    ends = [offset + count for offset, count, _ in recorder.calls]
    assert all(end % ALIGN == 0 for end in ends)
    assert [offset for offset, _, _ in recorder.calls] == [0, *ends[:-1]]  # contiguous, nothing twice
    assert written - ends[-1] < 4 * MIB + ALIGN


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="sync_file_range is Linux's")
def test_the_system_call_is_found_and_accepted_on_linux(tmp_path: Path) -> None:
    assert writeback.sync_file_range is not None
    fd = os.open(tmp_path / "f", os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        os.write(fd, os.urandom(MIB))
        assert writeback.sync_file_range(fd, 0, MIB, SYNC_FILE_RANGE_WRITE) == 0
    finally:
        os.close(fd)


@pytest_twisted.ensureDeferred
async def test_the_local_driver_starts_writeback_of_a_large_blob_and_keeps_its_bytes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    recorder = Recorder(real=writeback.sync_file_range)
    monkeypatch.setattr(writeback, "sync_file_range", recorder)
    driver = LocalDriver(str(tmp_path / "blobs"), reactor)
    data = os.urandom(2 * STRETCH + 3 * MIB)
    await put(driver, "c/ab/big", data, len(data), chunk=MIB)
    assert recorder.calls == [(0, STRETCH, SYNC_FILE_RANGE_WRITE), (STRETCH, STRETCH, SYNC_FILE_RANGE_WRITE)]
    assert (tmp_path / "blobs" / "c" / "ab" / "big").read_bytes() == data

    await put(driver, "c/ab/small", b"x" * MIB, MIB)  # a small blob: no request at all
    assert len(recorder.calls) == 2
