"""Reading a multipart artifact: its parts' blobs streamed one after another.

The wanted range is cut into per-part ranges; each part's driver reader is
opened only when the previous one has finished, so one blob is open at a time
and backpressure passes straight through to each part reader in turn.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IConsumer

from vaultaire.drivers.interface import BlobReader, Driver


def part_ranges(parts: Sequence[tuple[str, int]], start: int, end: int) -> list[tuple[str, int, int]]:
    """(locator, first byte, last byte) within each part that the range [start, end] touches."""
    out = []
    offset = 0
    for locator, size in parts:
        first, last = offset, offset + size - 1
        offset += size
        if size == 0 or last < start or first > end:
            continue
        out.append((locator, max(start, first) - first, min(end, last) - first))
    return out


class ManifestReader:
    """A BlobReader over several blobs, in order."""

    def __init__(
        self,
        driver: Driver,
        parts: Sequence[tuple[str, int]],
        start: int,
        end: int,
        open_blob: Callable[[str, int, int], Deferred[BlobReader]] | None = None,
    ) -> None:
        # ``open_blob`` opens one part's range (an encrypted part's opens and decrypts it).
        self._open = open_blob or driver.open_reader
        self._pieces = part_ranges(parts, start, end)
        self._current: BlobReader | None = None
        self._stopped = False

    def stream_to(self, consumer: IConsumer) -> Deferred[int]:
        return Deferred.fromCoroutine(self._stream(consumer))

    async def _stream(self, consumer: IConsumer) -> int:
        written = 0
        for locator, first, last in self._pieces:
            if self._stopped:
                break
            self._current = await self._open(locator, first, last)
            if self._stopped:
                self._current.stop()
                break
            written += await self._current.stream_to(consumer)
        self._current = None
        return written

    def stop(self) -> None:
        self._stopped = True
        if self._current is not None:
            self._current.stop()
