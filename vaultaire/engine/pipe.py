"""A byte pipe with backpressure: pushed in by a producer, pulled as a ChunkSource.

An upload body (the HTTP channel pushes) and a copy source (a driver reader
pushes) both flow through it into ``Engine.put``. When more than
``high_water`` bytes wait, the pushing side is paused, so a slow disk slows
the client (or the source) instead of filling memory.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.interfaces import IConsumer, IProducer, IPushProducer
from zope.interface import implementer

from vaultaire.drivers.interface import BlobReader


class ChunkSource(Protocol):
    """Where an upload's bytes come from: ``read()`` fires with b"" at the end."""

    def read(self) -> Deferred[bytes]: ...


class BytePipe:
    """A ChunkSource fed by ``feed``/``finish``/``fail``; ``read`` hands out aggregated chunks."""

    # reads wait for at least low_water bytes: fewer, larger chunks cost fewer thread hops

    def __init__(
        self,
        pause: Callable[[], None],
        resume: Callable[[], None],
        *,
        low_water: int = 1024 * 1024,
        high_water: int = 4 * 1024 * 1024,
    ) -> None:
        self._pause = pause
        self._resume = resume
        self._low = low_water
        self._high = high_water
        self._chunks: list[bytes] = []
        self._buffered = 0
        self._paused = False
        self._ended = False
        self._error: BaseException | None = None
        self._waiting: Deferred[bytes] | None = None
        self.received = 0  # bytes fed so far

    # -- the channel's side

    def feed(self, data: bytes) -> None:
        if self._ended or self._error is not None:
            return
        self.received += len(data)
        self._chunks.append(data)
        self._buffered += len(data)
        if self._buffered >= self._high:
            # Pause again even if already paused: the channel may have resumed
            # reading on its own when its send buffer drained.
            self._paused = True
            self._pause()
        self._wake()

    def finish(self) -> None:
        self._ended = True
        self._wake()

    def fail(self, error: BaseException) -> None:
        if self._ended:
            return
        self._error = error
        self._wake()

    # -- the engine's side

    def read(self) -> Deferred[bytes]:
        """Fire with the next chunk (at least ``low_water`` unless at the end), b"" at the end."""
        if self._waiting is not None:
            raise RuntimeError("only one read at a time")
        if self._ready():
            return self._take()
        d: Deferred[bytes] = Deferred(lambda _: self._cancel_wait())
        self._waiting = d
        return d

    def _cancel_wait(self) -> None:
        self._waiting = None

    def _ready(self) -> bool:
        return self._error is not None or self._ended or self._buffered >= self._low

    def _take(self) -> Deferred[bytes]:
        if self._buffered:
            data = self._chunks[0] if len(self._chunks) == 1 else b"".join(self._chunks)
            self._chunks = []
            self._buffered = 0
            if self._paused:
                self._paused = False
                self._resume()
            return succeed(data)
        if self._error is not None:
            return fail(self._error)
        return succeed(b"")

    def _wake(self) -> None:
        if self._waiting is not None and self._ready():
            d, self._waiting = self._waiting, None
            self._take().chainDeferred(d)

    @property
    def ended(self) -> bool:
        return self._ended


@implementer(IConsumer)
class _PipeConsumer:
    """Lets a driver reader (a push producer) write into a BytePipe."""

    def __init__(self) -> None:
        self.producer: IPushProducer | None = None
        self.pipe = BytePipe(self._pause, self._resume)

    def _pause(self) -> None:
        if self.producer is not None:
            self.producer.pauseProducing()

    def _resume(self) -> None:
        if self.producer is not None:
            self.producer.resumeProducing()

    def registerProducer(self, producer: IProducer, streaming: bool) -> None:
        # Blob readers push (the driver contract); a pull producer would never be asked for data.
        if not IPushProducer.providedBy(producer):
            raise TypeError(f"{producer!r} is not a push producer")
        self.producer = producer

    def unregisterProducer(self) -> None:
        self.producer = None

    def write(self, data: bytes) -> None:
        self.pipe.feed(data)


def reader_source(reader: BlobReader) -> BytePipe:
    """A ChunkSource of what ``reader`` streams: copies go through ``Engine.put`` like uploads."""
    consumer = _PipeConsumer()
    pipe = consumer.pipe
    reader.stream_to(consumer).addCallbacks(lambda _: pipe.finish(), lambda f: pipe.fail(f.value))
    return pipe
