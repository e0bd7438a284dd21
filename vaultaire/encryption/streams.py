"""Sealing on the way to a driver writer, opening on the way out of a driver reader.

The engine wraps the driver's writer and reader in these, so a driver only ever
sees ciphertext. Large chunks are sealed and opened in the reactor's thread pool
(``cryptography`` releases the GIL), one chunk at a time per stream, so a large
transfer neither stalls other requests nor holds more than a few chunks.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IConsumer, IPushProducer
from twisted.python.failure import Failure
from zope.interface import implementer

from vaultaire.drivers.interface import BlobReader, BlobWriter
from vaultaire.encryption.packages import Opener, Sealer

# Below this, a thread hop costs more than sealing on the reactor thread.
THREAD_MIN = 64 * 1024
# Ciphertext waiting to be opened beyond which the driver reader is paused.
HIGH_WATER = 4 * 1024 * 1024

Run = Callable[..., Deferred[Any]]


class SealingWriter:
    """A BlobWriter that seals plaintext into packages and writes them to ``inner``.

    Sealing chunk N+1 overlaps writing chunk N: ``write`` returns once its chunk is
    sealed and the previous chunk's write has finished, with its own write under way
    (one write at a time reaches the driver, and one sealed chunk at most waits).
    """

    def __init__(self, inner: BlobWriter, sealer: Sealer, run: Run) -> None:
        self._inner = inner
        self._sealer = sealer
        self._run = run
        self._writing: Deferred[None] | None = None

    def write(self, data: bytes) -> Deferred[None]:
        return Deferred.fromCoroutine(self._write(data))

    async def _write(self, data: bytes) -> None:
        sealed = self._sealer.update(data) if len(data) < THREAD_MIN else await self._run(self._sealer.update, data)
        await self._drain()
        if sealed:
            self._writing = self._inner.write(sealed)

    async def _drain(self) -> None:
        """Wait for the write under way; its failure is this call's."""
        writing, self._writing = self._writing, None
        if writing is not None:
            await writing

    def commit(self) -> Deferred[None]:
        return Deferred.fromCoroutine(self._commit())

    async def _commit(self) -> None:
        await self._drain()
        await self._inner.write(self._sealer.finish())
        await self._inner.commit()

    def abort(self) -> Deferred[None]:
        return Deferred.fromCoroutine(self._abort())

    async def _abort(self) -> None:
        try:
            await self._drain()
        except Exception:
            pass  # the write's failure is why we abort; the driver's abort drops what it kept
        await self._inner.abort()


@implementer(IConsumer, IPushProducer)
class OpeningReader:
    """A BlobReader of plaintext over a driver reader of the sealed packages holding it.

    It is the driver reader's consumer and the real consumer's producer: the
    driver reader is paused while the consumer is, or while too much ciphertext
    waits to be opened. Packages open in order on one chain; a package that does
    not open fails the stream (the S3 layer then cuts the connection), so no
    byte that was not written is ever passed on.
    """

    def __init__(self, inner: BlobReader, opener: Opener, skip: int, length: int, run: Run) -> None:
        self._inner = inner
        self._opener = opener
        self._skip = skip
        self._remaining = length
        self._run = run
        self._consumer: Any = None
        self._producer: Any = None  # the driver reader, once it registers with us
        self._chain: Deferred[None] = succeed(None)
        self._backlog = 0
        self._consumer_paused = False
        self._inner_paused = False
        self._failed: Failure | None = None
        self._stopped = False
        self.opened = 0  # plaintext bytes opened (for the benchmark's "bytes decrypted")

    # -- BlobReader

    def stream_to(self, consumer: IConsumer) -> Deferred[int]:
        self._consumer = consumer
        consumer.registerProducer(self, True)
        return Deferred.fromCoroutine(self._stream())

    async def _stream(self) -> int:
        try:
            try:
                await self._inner.stream_to(self)
            except BaseException:
                if self._failed is None:
                    raise  # else the reader failed because a package did not open: say that
            self._chain.addCallback(lambda _: None if self._failed or self._stopped else self._finish())
            self._chain.addErrback(self._fail)
            await self._chain
            if self._failed is not None:
                self._failed.raiseException()
            return self._written
        finally:
            self._consumer.unregisterProducer()

    _written = 0

    def stop(self) -> None:
        self._stopped = True
        self._inner.stop()

    # -- IConsumer, for the driver reader

    def registerProducer(self, producer: Any, streaming: bool) -> None:
        self._producer = producer
        self._steer()

    def unregisterProducer(self) -> None:
        self._producer = None

    def write(self, data: bytes) -> None:
        if self._failed is not None or self._stopped:
            return
        self._backlog += len(data)
        self._chain.addCallback(lambda _: self._open(data))
        self._chain.addErrback(self._fail)
        self._steer()

    def _open(self, data: bytes) -> Deferred[None] | None:
        if self._failed is not None or self._stopped:
            return None
        if len(data) < THREAD_MIN:
            self._done(data, self._opener.update(data))
            return None
        return self._run(self._opener.update, data).addCallback(lambda plain: self._done(data, plain))

    def _done(self, data: bytes, plain: bytes) -> None:
        self._backlog -= len(data)
        self._emit(plain)
        self._steer()

    def _emit(self, plain: bytes) -> None:
        self.opened += len(plain)
        # Cut only at the range's two ends: slicing every chunk would copy every byte once more.
        if self._skip:
            cut = min(self._skip, len(plain))
            plain = plain[cut:]
            self._skip -= cut
        if len(plain) > self._remaining:
            plain = plain[: self._remaining]
        self._remaining -= len(plain)
        if plain and not self._stopped:
            self._written += len(plain)
            self._consumer.write(plain)

    def _finish(self) -> None:
        self._emit(self._opener.finish())

    def _fail(self, failure: Failure) -> None:
        if self._failed is None:
            self._failed = failure
            self._inner.stop()

    def _steer(self) -> None:
        """Pause the driver reader while the consumer is paused or too much waits to be opened."""
        if self._producer is None:
            return
        want_paused = self._consumer_paused or self._backlog >= HIGH_WATER
        if want_paused and not self._inner_paused:
            self._inner_paused = True
            self._producer.pauseProducing()
        elif not want_paused and self._inner_paused:
            self._inner_paused = False
            self._producer.resumeProducing()

    # -- IPushProducer, for the consumer

    def pauseProducing(self) -> None:
        self._consumer_paused = True
        self._steer()

    def resumeProducing(self) -> None:
        self._consumer_paused = False
        self._steer()

    def stopProducing(self) -> None:
        self.stop()
