"""An in-memory driver for tests: same contract, no disk."""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.interfaces import IConsumer, IPushProducer
from zope.interface import implementer

from vaultaire.errors import DriverError


class MemoryBlobWriter:
    def __init__(self, store: dict[str, bytes], locator: str, size_hint: int | None = None) -> None:
        self._store = store
        self._locator = locator
        self._size_hint = size_hint
        self._chunks: list[bytes] = []

    def write(self, data: bytes) -> Deferred[None]:
        self._chunks.append(bytes(data))
        return succeed(None)

    def commit(self) -> Deferred[None]:
        data = b"".join(self._chunks)
        if self._size_hint is not None and len(data) != self._size_hint:
            return fail(DriverError(f"blob has {len(data)} bytes, {self._size_hint} were announced"))
        self._store[self._locator] = data
        return succeed(None)

    def abort(self) -> Deferred[None]:
        self._chunks = []
        return succeed(None)


@implementer(IPushProducer)
class MemoryBlobReader:
    def __init__(self, data: bytes, chunk: int = 256 * 1024) -> None:
        self._data = data
        self._chunk = chunk
        self._offset = 0
        self._paused = False
        self._stopped = False
        self._consumer: Any = None
        self._done: Deferred[int] = Deferred()

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


class MemoryDriver:
    def __init__(self, name: str = "memory") -> None:
        self.name = name
        self.blobs: dict[str, bytes] = {}

    def start(self) -> Deferred[None]:
        return succeed(None)

    def stop(self) -> Deferred[None]:
        return succeed(None)

    def open_writer(self, locator: str, size_hint: int | None = None) -> MemoryBlobWriter:
        return MemoryBlobWriter(self.blobs, locator, size_hint)

    def open_reader(self, locator: str, start: int, end: int) -> Deferred[MemoryBlobReader]:
        if locator not in self.blobs:
            return fail(DriverError(f"blob {locator} is missing"))
        return succeed(MemoryBlobReader(self.blobs[locator][start : end + 1]))

    def delete(self, locator: str) -> Deferred[None]:
        self.blobs.pop(locator, None)
        return succeed(None)

    def stat(self, locator: str) -> Deferred[int | None]:
        blob = self.blobs.get(locator)
        return succeed(None if blob is None else len(blob))

    def health(self) -> Deferred[dict[str, object]]:
        return succeed({"status": "ok", "blobs": len(self.blobs)})
