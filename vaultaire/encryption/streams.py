"""Sealing on the way to a driver writer, opening on the way out of a driver reader.

The engine wraps the driver's writer and reader in these, so a driver only ever
sees ciphertext. Large chunks are sealed and opened in the reactor's thread pool,
one chunk at a time per stream (``cryptography`` drops the GIL while it works), so a
large transfer neither stalls other requests nor holds more than a few chunks. A
reader whose driver offers the blob's file and whose consumer can send buffers
itself opens from the file instead (direct.py).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IConsumer, IPushProducer
from twisted.python.failure import Failure
from zope.interface import implementer

from vaultaire.drivers.interface import BlobReader, BlobWriter
from vaultaire.encryption.direct import DirectOpening
from vaultaire.encryption.packages import Opener, Sealer
from vaultaire.errors import DriverError

# Below this, a thread hop costs more than sealing on the reactor thread.
THREAD_MIN = 64 * 1024
# Ciphertext opened in one thread hop, at most about: a hop per package costs more than it
# saves, a hop per MiB is nothing next to opening it.
BATCH = 1024 * 1024
# Bytes a reader holds ahead of its consumer (ciphertext waiting, the batch being opened,
# plaintext not yet written) beyond which the driver reader is paused: the next batch is
# open by the time the consumer has written the one before, and memory stays flat.
READ_AHEAD = 3 * 1024 * 1024

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

    It is the driver reader's consumer and the real consumer's producer. Ciphertext is
    opened in batches of about ``BATCH`` bytes, one batch at a time (the opener is a
    sequence), in the crypto threads, while the reactor writes the batch before it to the
    consumer: a paused consumer does not stop the opening, a full read-ahead does. Once
    ``READ_AHEAD`` bytes wait (ciphertext not yet opened, the batch being opened, and
    plaintext not yet written), the driver reader is paused, so memory stays flat however
    slow the client. A package that does not open fails the stream (the S3 layer then cuts
    the connection), so no byte that was not written is ever passed on.
    """

    def __init__(self, inner: BlobReader, opener: Opener, skip: int, length: int, run: Run) -> None:
        self._inner = inner
        self._opener = opener
        self._skip = skip
        self._remaining = length
        self._run = run
        self._consumer: Any = None
        self._producer: Any = None  # the driver reader, once it registers with us
        self._sealed: deque[bytes] = deque()  # ciphertext not yet handed to the opener
        self._sealed_bytes = 0
        self._opening = 0  # ciphertext bytes of the batch being opened in a thread
        self._plain: deque[bytes] = deque()  # opened, not yet written to the consumer
        self._plain_bytes = 0
        self._inner_done = False  # the driver reader has handed over every stored byte
        self._finished = False  # the opener's final package is open
        self._consumer_paused = False
        self._inner_paused = False
        self._stopped = False
        self._advancing = False
        self._again = False
        self._result: Deferred[None] = Deferred()
        self._written = 0
        self._direct: DirectOpening | None = None  # opening straight from the blob's file
        self._opened_bytes = 0

    # -- BlobReader

    def stream_to(self, consumer: IConsumer) -> Deferred[int]:
        self._consumer = consumer
        consumer.registerProducer(self, True)
        return Deferred.fromCoroutine(self._stream())

    @property
    def opened(self) -> int:
        """Plaintext bytes opened (for the benchmark's "bytes decrypted")."""
        return self._opened_bytes + (self._direct.opened if self._direct is not None else 0)

    async def _stream(self) -> int:
        try:
            try:
                await self._inner.stream_to(self)
            except BaseException:
                direct = self._direct
                if direct is not None and direct.failure is not None:
                    # The driver reports the opening's failure as its own; the opening's says why.
                    self._fail(direct.failure, stop_inner=False)
                else:
                    # The driver's failure, unless the reader failed because a package did not open
                    # (its stop is what the driver reader reports then): the first failure is the one.
                    self._fail(Failure(), stop_inner=False)
            else:
                self._inner_done = True
                if self._direct is not None:
                    self._written = self._direct.written
                    self._result.callback(None)
                else:
                    self._advance()
            await self._result
            return self._written
        finally:
            self._consumer.unregisterProducer()

    def send_file(self, fd: int, offset: int, count: int) -> Deferred[int] | None:
        """The driver offers the blob's file: open from it and send through the consumer's
        ``buffer_sender`` when it has one that works now (None: the driver streams instead)."""
        sends = getattr(self._consumer, "sends_directly", None)
        if sends is None or not sends() or self._sealed or self._opening or self._opened_bytes:
            return None
        self._direct = DirectOpening(
            fd, offset, count, self._opener, self._skip, self._remaining, self._run, self._consumer.buffer_sender
        )
        return self._direct.start()

    def stop(self) -> None:
        self._stopped = True
        self._drop()
        if self._inner_done:
            # The driver reader has nothing left to stop: what it would say, say here.
            if not self._result.called:
                self._result.errback(DriverError("reader stopped before the end"))
        else:
            self._inner.stop()

    # -- IConsumer, for the driver reader

    def registerProducer(self, producer: Any, streaming: bool) -> None:
        self._producer = producer
        self._advance()

    def unregisterProducer(self) -> None:
        self._producer = None

    def write(self, data: bytes) -> None:
        if self._result.called or self._stopped:
            return
        self._sealed.append(data)
        self._sealed_bytes += len(data)
        # Steered here too: a driver reader may write again and again inside the resumeProducing
        # that ``_advance`` calls, and those writes only queue up until it returns.
        self._steer(pause_only=True)
        self._advance()

    # -- the pipeline

    def _advance(self) -> None:
        """Write what is open, start opening what waits, end or steer the driver reader.

        Every event calls it (a chunk in, a batch opened, the consumer resumed, the driver
        reader done); re-entrant calls (a resumed driver reader writes at once) loop here.
        """
        if self._advancing:
            self._again = True
            return
        self._advancing = True
        try:
            self._again = True
            while self._again and not (self._result.called or self._stopped):
                self._again = False
                self._step()
        except Exception:
            self._fail(Failure())
        finally:
            self._advancing = False

    def _step(self) -> None:
        while self._plain and not self._consumer_paused and not self._stopped:
            plain = self._plain.popleft()
            self._plain_bytes -= len(plain)
            self._emit(plain)
        if self._stopped:
            return
        if not self._opening:
            if self._sealed:
                batch = []
                size = 0
                while self._sealed and size < BATCH:
                    batch.append(self._sealed.popleft())
                    size += len(batch[-1])
                self._sealed_bytes -= size
                if size < THREAD_MIN:
                    self._opened(self._opener.open_batch(batch))  # a thread hop would cost more
                    self._again = True
                else:
                    self._opening = size
                    self._run(self._opener.open_batch, batch).addCallbacks(self._opened_in_thread, self._fail)
            elif self._inner_done and not self._finished:
                self._finished = True
                self._opened(self._opener.finish())
                self._again = True
        if self._finished and not self._plain and not self._opening:
            self._result.callback(None)
            return
        self._steer()

    def _opened_in_thread(self, plain: bytes) -> None:
        self._opening = 0
        if not (self._result.called or self._stopped):
            self._opened(plain)
            self._advance()

    def _opened(self, plain: bytes) -> None:
        self._opened_bytes += len(plain)
        if plain:
            self._plain.append(plain)
            self._plain_bytes += len(plain)

    def _emit(self, plain: bytes) -> None:
        # Cut only at the range's two ends: slicing every chunk would copy every byte once more.
        if self._skip:
            cut = min(self._skip, len(plain))
            plain = plain[cut:]
            self._skip -= cut
        if len(plain) > self._remaining:
            plain = plain[: self._remaining]
        self._remaining -= len(plain)
        if plain:
            self._written += len(plain)
            self._consumer.write(plain)

    def _fail(self, failure: Failure, stop_inner: bool = True) -> None:
        if self._result.called:
            return
        self._drop()
        if stop_inner and not self._inner_done:
            self._inner.stop()
        self._result.errback(failure)

    def _drop(self) -> None:
        self._sealed.clear()
        self._plain.clear()
        self._sealed_bytes = self._plain_bytes = 0

    def _steer(self, pause_only: bool = False) -> None:
        """Pause the driver reader while the read-ahead is full; resume it once there is room."""
        if self._producer is None:
            return
        want_paused = self._sealed_bytes + self._opening + self._plain_bytes >= READ_AHEAD
        if want_paused and not self._inner_paused:
            self._inner_paused = True
            self._producer.pauseProducing()
        elif not want_paused and self._inner_paused and not pause_only:
            self._inner_paused = False
            self._producer.resumeProducing()

    # -- IPushProducer, for the consumer

    def pauseProducing(self) -> None:
        self._consumer_paused = True

    def resumeProducing(self) -> None:
        self._consumer_paused = False
        self._advance()

    def stopProducing(self) -> None:
        self.stop()
