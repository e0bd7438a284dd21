"""Copying one blob from a driver to another, streamed, with backpressure: for repairs and failover."""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IConsumer, IProducer, IPushProducer
from zope.interface import implementer

from vaultaire.drivers.interface import BlobWriter, Driver
from vaultaire.errors import DriverError


@implementer(IConsumer)
class WriterConsumer:
    """Feeds what a reader pushes into a BlobWriter, one write at a time, pausing the reader meanwhile."""

    def __init__(self, writer: BlobWriter) -> None:
        self._writer = writer
        self._producer: IPushProducer | None = None
        self._tail: Deferred[Any] = Deferred()
        self._tail.callback(None)
        self._outstanding = 0
        self.error: BaseException | None = None

    def registerProducer(self, producer: IProducer, streaming: bool) -> None:
        # Blob readers push (the driver contract); a pull producer would never be asked for data.
        if not IPushProducer.providedBy(producer):
            raise TypeError(f"{producer!r} is not a push producer")
        self._producer = producer

    def unregisterProducer(self) -> None:
        self._producer = None

    def write(self, data: bytes) -> None:
        self._outstanding += 1
        if self._producer is not None:
            self._producer.pauseProducing()
        self._tail.addCallback(lambda _: self._writer.write(data) if self.error is None else None)
        self._tail.addErrback(self._failed)
        self._tail.addBoth(self._written)

    def _failed(self, failure: Any) -> None:
        self.error = failure.value
        if self._producer is not None:
            self._producer.stopProducing()

    def _written(self, _: Any) -> None:
        self._outstanding -= 1
        if self._outstanding == 0 and self._producer is not None and self.error is None:
            self._producer.resumeProducing()

    def drained(self) -> Deferred[Any]:
        """Fires when every write so far has been accepted by the writer."""
        d: Deferred[Any] = Deferred()

        def fire(result: object) -> object:
            d.callback(None)
            return result

        self._tail.addBoth(fire)
        return d


async def copy_blob(
    source: Driver, target: Driver, locator: str, size: int | None = None, target_locator: str | None = None
) -> int:
    """Copy ``locator`` from ``source`` to ``target`` (at ``target_locator``, the same by
    default); returns its size.

    The target's copy is committed only when every byte arrived; any failure aborts it.
    """
    if size is None:
        size = await source.stat(locator)
        if size is None:
            raise DriverError(f"blob {locator} is not on {source.name}")
    reader = await source.open_reader(locator, 0, size - 1)
    writer = target.open_writer(target_locator or locator, size)
    consumer = WriterConsumer(writer)
    try:
        written = await reader.stream_to(consumer)
        await consumer.drained()
        if consumer.error is not None:
            raise consumer.error
        if written != size:
            raise DriverError(f"copying {locator}: read {written} of {size} bytes")
        await writer.commit()
    except BaseException:
        reader.stop()
        await writer.abort()
        raise
    return size
