"""A reader over bytes already in hand: the memory driver's blobs, the local driver's small reads."""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IConsumer, IPushProducer
from zope.interface import implementer


@implementer(IPushProducer)
class BytesReader:
    """A blob already in memory, written to the consumer in chunks, honouring pauses."""

    def __init__(self, data: bytes, chunk: int = 256 * 1024) -> None:
        self._data = data
        self._chunk = chunk
        self._offset = 0
        self._paused = False
        self._stopped = False
        self._consumer: Any = None
        self._done: Deferred[int] = Deferred()

    @property
    def data(self) -> bytes:
        """The bytes it holds (a reader that only decodes them, as decryption does, takes them whole)."""
        return self._data

    def stream_to(self, consumer: IConsumer) -> Deferred[int]:
        self._consumer = consumer
        consumer.registerProducer(self, True)
        self.resumeProducing()
        return self._done

    def resumeProducing(self) -> None:
        self._paused = False
        while not self._paused and not self._stopped and self._offset < len(self._data):
            piece = self._data[self._offset : self._offset + self._chunk]
            self._offset += len(piece)
            self._consumer.write(piece)
        if self._offset >= len(self._data) and not self._stopped:
            self._stopped = True
            self._consumer.unregisterProducer()
            self._done.callback(len(self._data))

    def pauseProducing(self) -> None:
        self._paused = True

    def stopProducing(self) -> None:
        self.stop()

    def stop(self) -> None:
        self._stopped = True
