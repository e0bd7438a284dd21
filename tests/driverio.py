"""Writing and reading blobs straight through a driver, as the engine does, for driver tests."""

from __future__ import annotations

from typing import Any

from twisted.internet import reactor
from twisted.internet.interfaces import IConsumer
from zope.interface import implementer


@implementer(IConsumer)
class Collector:
    """A consumer that can pause its producer for a while after each write (a slow client)."""

    def __init__(self, pause_every: int = 0) -> None:
        self.chunks: list[bytes] = []
        self.producer: Any = None
        self.pause_every = pause_every
        self.pauses = 0

    def registerProducer(self, producer: Any, streaming: bool) -> None:
        self.producer = producer

    def unregisterProducer(self) -> None:
        self.producer = None

    def write(self, data: bytes) -> None:
        self.chunks.append(data)
        if self.pause_every and len(self.chunks) % self.pause_every == 0 and self.producer is not None:
            self.pauses += 1
            producer = self.producer
            producer.pauseProducing()
            reactor.callLater(0.01, producer.resumeProducing)

    @property
    def data(self) -> bytes:
        return b"".join(self.chunks)


async def put(driver: Any, locator: str, data: bytes, size_hint: int | None = None, chunk: int = 256 * 1024) -> None:
    """Write ``data`` as blob ``locator`` in ``chunk``-sized writes and commit it (abort on any error)."""
    writer = driver.open_writer(locator, size_hint)
    try:
        for i in range(0, len(data), chunk):
            await writer.write(data[i : i + chunk])
        await writer.commit()
    except BaseException:
        await writer.abort()
        raise


async def read(driver: Any, locator: str, start: int, end: int, pause_every: int = 0) -> bytes:
    """Bytes ``start``..``end`` (inclusive) of a blob, streamed to a consumer that checks the reader's manners."""
    reader = await driver.open_reader(locator, start, end)
    consumer = Collector(pause_every)
    n = await reader.stream_to(consumer)
    assert n == len(consumer.data)
    assert consumer.producer is None  # unregistered before firing
    return consumer.data
