"""The driver contract: opaque locators in, bytes out, nothing else.

A locator is chosen by the engine (``<container-id>/<ab>/<uuid>``) and means
nothing to the driver beyond a name that is safe to use as a relative path.
"""

from __future__ import annotations

from typing import Protocol

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IConsumer


class BlobWriter(Protocol):
    """Chunks in, then exactly one of commit or abort."""

    def write(self, data: bytes) -> Deferred[None]:
        """Accept a chunk; the Deferred fires when the writer can take another (backpressure)."""

    def commit(self) -> Deferred[None]:
        """Make the blob durable at its locator before firing."""

    def abort(self) -> Deferred[None]:
        """Drop everything written; safe to call more than once and after a failure."""


class BlobReader(Protocol):
    """Streams a byte range of one blob into a consumer, honouring its backpressure."""

    def stream_to(self, consumer: IConsumer) -> Deferred[int]:
        """Register as a push producer on ``consumer`` and write the range.

        Fires with the number of bytes written; unregisters before firing.
        """

    def stop(self) -> None:
        """The consumer is gone: stop reading and release the blob."""


class Driver(Protocol):
    name: str

    def start(self) -> Deferred[None]: ...

    def stop(self) -> Deferred[None]: ...

    def open_writer(self, locator: str) -> BlobWriter: ...

    def open_reader(self, locator: str, start: int, end: int) -> Deferred[BlobReader]:
        """A reader for bytes start..end inclusive (end < start for an empty blob)."""

    def delete(self, locator: str) -> Deferred[None]:
        """Free the blob; a blob already gone is not an error."""

    def health(self) -> Deferred[dict[str, object]]: ...
