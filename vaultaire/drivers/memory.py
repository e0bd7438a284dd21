"""An in-memory driver for tests: same contract, no disk."""

from __future__ import annotations

from twisted.internet.defer import Deferred, fail, succeed

from vaultaire.drivers.bytes_reader import BytesReader
from vaultaire.drivers.interface import BlobReader
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


class MemoryDriver:
    readers_keep_blobs = True  # a reader holds the bytes

    def __init__(self, name: str = "memory") -> None:
        self.name = name
        self.blobs: dict[str, bytes] = {}

    def start(self) -> Deferred[None]:
        return succeed(None)

    def stop(self) -> Deferred[None]:
        return succeed(None)

    def open_writer(self, locator: str, size_hint: int | None = None) -> MemoryBlobWriter:
        return MemoryBlobWriter(self.blobs, locator, size_hint)

    def open_reader(self, locator: str, start: int, end: int) -> Deferred[BlobReader]:
        if locator not in self.blobs:
            return fail(DriverError(f"blob {locator} is missing"))
        return succeed(BytesReader(self.blobs[locator][start : end + 1]))

    def delete(self, locator: str) -> Deferred[None]:
        self.blobs.pop(locator, None)
        return succeed(None)

    def stat(self, locator: str) -> Deferred[int | None]:
        blob = self.blobs.get(locator)
        return succeed(None if blob is None else len(blob))

    def health(self) -> Deferred[dict[str, object]]:
        return succeed({"status": "ok", "blobs": len(self.blobs)})
