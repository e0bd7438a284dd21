"""Opening a sealed blob straight from its file into buffers the response sends as they are.

The streaming path (streams.OpeningReader over a driver reader) moves each MiB
through four copies and three queues: read into a new bytes, opened into another,
copied into the transport's buffer, sent 128 KiB per reactor turn. That spent
1.1 CPU-seconds per GiB and ran at half the speed of a plain GET. When the driver
offers the blob's descriptor (the local driver does, to a consumer with
``send_file``) and the response can write to its socket itself (``buffer_sender``),
this does instead, one batch at a time:

* in a thread: read the batch's sealed packages into one kept buffer (``preadv``,
  no new bytes) and open them into one of two kept plaintext buffers;
* on the reactor: queue that buffer on the response's sender, which writes it to
  the socket as the client takes it, while the thread fills the next.

``cryptography`` drops the GIL while it decrypts and ``preadv`` while it reads, so
the thread's work runs beside the reactor's sending. Memory is four batches,
whatever the size.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any, Protocol

from twisted.internet.defer import CancelledError, Deferred
from twisted.python.failure import Failure

from vaultaire.encryption.packages import PACKAGE, SEALED_PACKAGE, Opener
from vaultaire.errors import DriverError

# Packages opened per thread hop: 2 MiB of plaintext, sent in one go. 1 MiB batches ran at
# 0.7 of a plain GET (the hops and the gaps between buffers), 4 MiB ones took 16 MiB a GET.
BATCH_PACKAGES = 32

Run = Callable[..., Deferred[Any]]


class Sender(Protocol):
    """Where the plaintext goes: the response's BufferSender (api/sendfile.py)."""

    done: Deferred[int]

    def send(self, data: Any) -> Deferred[int]: ...

    def close(self) -> None: ...

    def stop(self) -> None: ...


class DirectOpening:
    """Opens stored bytes ``offset .. offset+count`` of ``fd`` and sends plaintext bytes
    ``skip .. skip+length`` of what they hold through the sender ``make_sender`` makes.

    ``done`` fires with the stored bytes consumed (``count``), or fails: with the
    opener's TamperedError for a package that does not open, DriverError for a file
    shorter than the catalog says, or the sender's failure (a client gone). Cancelling
    ``done`` stops the sending; the descriptor (a duplicate of ``fd``) is closed only
    once no thread reads it any more.
    """

    def __init__(
        self,
        fd: int,
        offset: int,
        count: int,
        opener: Opener,
        skip: int,
        length: int,
        run: Run,
        make_sender: Callable[[], Sender | None],
    ) -> None:
        self._fd = os.dup(fd)
        self._offset = offset
        self._left = count
        self._count = count
        self._opener = opener
        self._skip = skip
        self._remaining = length
        self._run = run
        # Made once the first batch is open: a blob that fails at once fails before the
        # response head is sent, so the client gets an error answer, not a cut connection.
        self._make_sender = make_sender
        self._sender: Sender | None = None
        self._stopped = False
        self.opened = 0  # plaintext bytes opened (the benchmark's "bytes decrypted")
        self.written = 0  # plaintext bytes given to the sender
        self.failure: Failure | None = None  # why it ended early, once it has
        self.done: Deferred[int] = Deferred(lambda _: self.stop())

    def start(self) -> Deferred[int]:
        Deferred.fromCoroutine(self._loop()).addBoth(self._ended)
        return self.done

    def stop(self) -> None:
        self._stopped = True
        if self._sender is not None:
            self._sender.stop()  # every buffer queued fails with ClientGone: the loop ends
            self._sender.done.addErrback(lambda _: None)  # the stop's own doing

    async def _loop(self) -> int:
        queued: list[Deferred[int] | None] = [None, None, None]
        try:
            return await self._open_and_send(queued)
        except BaseException:
            # The connection is cut (the S3 layer does it on this failure), which fails what is
            # still queued, and the sender's end: the failure reported is this one.
            for sending in queued:
                if sending is not None:
                    sending.addErrback(lambda _: None)
            if self._sender is not None:
                self._sender.done.addErrback(lambda _: None)
            raise

    async def _open_and_send(self, queued: list[Deferred[int] | None]) -> int:
        # One buffer on the socket, one queued behind it, one being filled in a thread. The next
        # fill starts before a filled buffer is handed to the sender, whose first write runs at
        # once, in the reactor, as far as the socket takes it: started after it, the thread
        # waited for that write, and reading, opening and sending took turns (measured: a
        # 1 GiB GET spent 0.27 s in those writes and 0.36 s waiting for fills, one after the other).
        plain = [bytearray(BATCH_PACKAGES * PACKAGE) for _ in range(len(queued))]
        sealed = bytearray(BATCH_PACKAGES * SEALED_PACKAGE)
        turn = 0
        filling = self._fill_next(sealed, plain[turn]) if self._left > 0 else None
        try:
            while filling is not None:
                size = await filling
                filling = None
                self.opened += size
                if self._stopped:
                    break
                view = self._cut(memoryview(plain[turn])[:size])
                following = (turn + 1) % len(plain)
                if self._left > 0:
                    sending, queued[following] = queued[following], None
                    if sending is not None:
                        await sending  # sent: the buffer may be refilled
                    if self._stopped:
                        break
                    filling = self._fill_next(sealed, plain[following])
                if view:
                    queued[turn] = self._the_sender().send(view)
                    self.written += len(view)
                turn = following
        finally:
            if filling is not None:
                # The thread must be done with the descriptor before it is closed; its own
                # outcome no longer matters (the loop is ending for another reason).
                try:
                    await filling
                except BaseException:
                    pass
        if self._stopped:
            raise CancelledError("stopped before the end")
        self._opener.check_opened_all()
        sender = self._the_sender()
        sender.close()
        await sender.done
        return self._count

    def _fill_next(self, sealed: bytearray, plain: bytearray) -> Deferred[int]:
        """The next stored bytes read and opened into ``plain``, in a thread. Never cancelled."""
        want = min(self._left, len(sealed))
        filling = self._run(self._fill, self._offset, want, sealed, plain)
        self._offset += want
        self._left -= want
        return filling

    def _the_sender(self) -> Sender:
        if self._sender is None:
            self._sender = self._make_sender()
            if self._sender is None:
                raise DriverError("the response can no longer be sent directly")
        return self._sender

    def _fill(self, offset: int, want: int, sealed: bytearray, plain: bytearray) -> int:
        """In a thread: read ``want`` stored bytes at ``offset`` and open them into ``plain``."""
        view = memoryview(sealed)[:want]
        got = os.preadv(self._fd, [view], offset)
        if got < want:
            raise DriverError("blob is shorter than the catalog says")
        return self._opener.open_into(view, memoryview(plain))

    def _cut(self, view: memoryview) -> memoryview:
        # Only the range's two ends are cut, as views: no byte is copied.
        if self._skip:
            cut = min(self._skip, len(view))
            view = view[cut:]
            self._skip -= cut
        view = view[: self._remaining]
        self._remaining -= len(view)
        return view

    def _ended(self, result: int | Failure) -> None:
        os.close(self._fd)
        if isinstance(result, Failure):
            self.failure = result
        if self.done.called:
            return  # cancelled: the canceller has answered already
        if isinstance(result, Failure):
            self.done.errback(result)
        else:
            self.done.callback(result)
