"""An in-memory driver for tests: same contract, no disk."""

from __future__ import annotations

from twisted.internet.defer import Deferred, fail, succeed

from vaultaire.drivers.bytes_reader import BytesReader
from vaultaire.errors import DriverError


class MemoryBlobWriter:
    def __init__(self, store: dict[str, bytes], locator: str) -> None:
        self._store = store
        self._locator = locator
        self._chunks: list[bytes] = []

    def write(self, data: bytes) -> Deferred[None]:
        self._chunks.append(bytes(data))
        return succeed(None)

    def commit(self) -> Deferred[None]:
        self._store[self._locator] = b"".join(self._chunks)
        return succeed(None)

    def abort(self) -> Deferred[None]:
        self._chunks = []
        return succeed(None)


class MemoryDriver:
    def __init__(self, name: str = "memory") -> None:
        self.name = name
        self.blobs: dict[str, bytes] = {}

    def start(self) -> Deferred[None]:
        return succeed(None)

    def stop(self) -> Deferred[None]:
        return succeed(None)

    def open_writer(self, locator: str) -> MemoryBlobWriter:
        return MemoryBlobWriter(self.blobs, locator)

    def open_reader(self, locator: str, start: int, end: int) -> Deferred[BytesReader]:
        if locator not in self.blobs:
            return fail(DriverError(f"blob {locator} is missing"))
        return succeed(BytesReader(self.blobs[locator][start : end + 1]))

    def delete(self, locator: str) -> Deferred[None]:
        self.blobs.pop(locator, None)
        return succeed(None)

    def health(self) -> Deferred[dict[str, object]]:
        return succeed({"status": "ok", "blobs": len(self.blobs)})
