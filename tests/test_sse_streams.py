"""The sealing writer and opening reader on their own: backpressure, ranges, failures."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any

import pytest
import pytest_twisted
from twisted.internet import reactor
from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.interfaces import IConsumer
from twisted.internet.task import deferLater
from twisted.internet.threads import deferToThreadPool
from zope.interface import implementer

from tests.driverio import Collector
from vaultaire.drivers.bytes_reader import BytesReader
from vaultaire.encryption.packages import PACKAGE, Opener, Sealer, TamperedError, sealed_range
from vaultaire.encryption.streams import BATCH, READ_AHEAD, OpeningReader, SealingWriter
from vaultaire.errors import DriverError

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


class TrackingReader(BytesReader):
    """A driver reader that counts what it hands over and says whether it is paused."""

    def __init__(self, data: bytes, chunk: int) -> None:
        super().__init__(data, chunk)
        self.handed = 0
        self.paused = False

    def stream_to(self, consumer: Any) -> Deferred[int]:
        self._consumer = Tracking(consumer, self)
        return super().stream_to(self._consumer)

    def pauseProducing(self) -> None:
        self.paused = True
        super().pauseProducing()

    def resumeProducing(self) -> None:
        self.paused = False
        super().resumeProducing()


class Tracking:
    def __init__(self, consumer: Any, reader: TrackingReader) -> None:
        self._consumer, self._reader = consumer, reader

    def registerProducer(self, producer: Any, streaming: bool) -> None:
        self._consumer.registerProducer(producer, streaming)

    def unregisterProducer(self) -> None:
        self._consumer.unregisterProducer()

    def write(self, data: bytes) -> None:
        self._reader.handed += len(data)
        self._consumer.write(data)


@implementer(IConsumer)
class HoldingConsumer:
    """A consumer that pauses its producer after every write, as a transport with a full buffer does,
    until the test resumes it."""

    def __init__(self) -> None:
        self.chunks: list[bytes] = []
        self.producer: Any = None
        self.paused = False
        self.written_while_paused = 0

    def registerProducer(self, producer: Any, streaming: bool) -> None:
        self.producer = producer

    def unregisterProducer(self) -> None:
        self.producer = None

    def write(self, data: bytes) -> None:
        if self.paused:
            self.written_while_paused += len(data)
        self.chunks.append(data)
        self.paused = True
        if self.producer is not None:
            self.producer.pauseProducing()

    def resume(self) -> None:
        self.paused = False
        if self.producer is not None:
            self.producer.resumeProducing()

    @property
    def data(self) -> bytes:
        return b"".join(self.chunks)


async def until(condition: Callable[[], bool], what: str, deadline: float = 30.0) -> None:
    """Poll the reactor until ``condition`` holds (generous deadline: the machine may be loaded)."""
    end = time.monotonic() + deadline
    while not condition():
        if time.monotonic() > end:
            raise AssertionError(f"timed out waiting until {what}")
        await deferLater(reactor, 0.005, lambda: None)


@pytest_twisted.ensureDeferred
async def test_the_next_batch_opens_while_the_consumer_is_paused_and_the_read_ahead_is_bounded():
    plain = os.urandom(4 * READ_AHEAD + 12345)
    stored = await sealed(plain, chunk=BATCH)
    inner = TrackingReader(stored, chunk=256 * 1024)
    reader = OpeningReader(inner, Opener(KEY, PREFIX, len(plain)), 0, len(plain), run)
    consumer = HoldingConsumer()
    done = reader.stream_to(consumer)
    # The consumer took one batch and paused: the reader goes on opening the next ones, so they are
    # ready the moment the consumer asks, until its read-ahead is full; then the driver reader pauses.
    await until(lambda: inner.paused and reader.opened >= len(consumer.data) + BATCH, "the read-ahead is full")
    assert consumer.written_while_paused == 0
    assert inner.handed <= READ_AHEAD + 256 * 1024 + BATCH  # bounded: memory stays flat however slow the client
    rounds = 0
    while not done.called:
        ready = reader.opened - len(consumer.data)
        consumer.resume()
        if ready >= BATCH:
            assert consumer.paused, "an opened batch waited although the consumer asked for more"
        await until(lambda: consumer.paused or done.called, "the consumer gets more")
        rounds += 1
    assert (await done) == len(plain) and consumer.data == plain
    assert consumer.written_while_paused == 0 and rounds > 4


@pytest_twisted.ensureDeferred
async def test_stopping_after_the_driver_reader_is_done_fails_the_stream():
    plain = os.urandom(2 * BATCH)
    stored = await sealed(plain, chunk=BATCH)
    inner = TrackingReader(stored, chunk=256 * 1024)
    reader = OpeningReader(inner, Opener(KEY, PREFIX, len(plain)), 0, len(plain), run)
    consumer = HoldingConsumer()
    done = reader.stream_to(consumer)
    await until(lambda: inner.handed == len(stored) and consumer.chunks != [], "the driver reader is done")
    consumer.producer.stopProducing()  # the client went away with plaintext still waiting for it
    with pytest.raises(DriverError):
        await done
    assert len(consumer.data) < len(plain) and consumer.producer is None
