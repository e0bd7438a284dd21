"""The sealing writer and opening reader on their own: backpressure, ranges, failures."""

from __future__ import annotations

import os

import pytest
import pytest_twisted
from twisted.internet import reactor
from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.threads import deferToThreadPool

from tests.driverio import Collector
from vaultaire.drivers.bytes_reader import BytesReader
from vaultaire.encryption.packages import PACKAGE, Opener, Sealer, TamperedError, sealed_range
from vaultaire.encryption.streams import OpeningReader, SealingWriter

KEY = os.urandom(32)
PREFIX = os.urandom(4)


def run(fn, *args):
    return deferToThreadPool(reactor, reactor.getThreadPool(), fn, *args)


class ListWriter:
    """A driver writer keeping what it gets; ``fail_at`` makes that write (0-based) fail."""

    def __init__(self, fail_at: int | None = None) -> None:
        self.chunks: list[bytes] = []
        self.fail_at = fail_at
        self.committed = self.aborted = False

    def write(self, data: bytes) -> Deferred[None]:
        if self.fail_at is not None and len(self.chunks) == self.fail_at:
            self.chunks.append(b"")
            return fail(OSError("disk full"))
        self.chunks.append(data)
        return succeed(None)

    def commit(self) -> Deferred[None]:
        self.committed = True
        return succeed(None)

    def abort(self) -> Deferred[None]:
        self.aborted = True
        return succeed(None)


async def sealed(plain: bytes, chunk: int = 300_000) -> bytes:
    inner = ListWriter()
    writer = SealingWriter(inner, Sealer(KEY, PREFIX), run)
    for at in range(0, len(plain), chunk):
        await writer.write(plain[at : at + chunk])
    await writer.commit()
    assert inner.committed
    return b"".join(inner.chunks)


@pytest_twisted.ensureDeferred
async def test_ranges_read_through_a_slow_consumer_are_exact():
    plain = os.urandom(5 * PACKAGE + 777)
    stored = await sealed(plain)
    for start, end in [(0, len(plain) - 1), (1, 1), (PACKAGE - 3, 3 * PACKAGE + 2), (len(plain) - 5, len(plain) - 1)]:
        where = sealed_range(start, end, len(plain))
        inner = BytesReader(stored[where.stored_start : where.stored_end + 1], chunk=50_000)
        opener = Opener(KEY, PREFIX, len(plain), where.first_package, end // PACKAGE)
        reader = OpeningReader(inner, opener, where.skip, where.length, run)
        consumer = Collector(pause_every=2)
        written = await reader.stream_to(consumer)
        assert consumer.data == plain[start : end + 1] and written == end - start + 1
        assert reader.opened <= (end // PACKAGE - start // PACKAGE + 1) * PACKAGE  # only the packages touched
        assert consumer.producer is None  # unregistered when done


@pytest_twisted.ensureDeferred
async def test_a_failed_driver_write_fails_the_upload_and_aborts():
    inner = ListWriter(fail_at=1)
    writer = SealingWriter(inner, Sealer(KEY, PREFIX), run)
    with pytest.raises(OSError):
        for _ in range(4):
            await writer.write(os.urandom(200_000))
        await writer.commit()
    await writer.abort()
    assert inner.aborted and not inner.committed


@pytest_twisted.ensureDeferred
async def test_a_truncated_blob_fails_the_read():
    plain = os.urandom(3 * PACKAGE)
    stored = await sealed(plain)
    reader = OpeningReader(BytesReader(stored[:-1]), Opener(KEY, PREFIX, len(plain)), 0, len(plain), run)
    consumer = Collector()
    with pytest.raises(TamperedError):
        await reader.stream_to(consumer)
    assert plain.startswith(consumer.data) and len(consumer.data) < len(plain)
