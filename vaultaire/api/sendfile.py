"""A response body written to the client's socket beside Twisted's transport: by the kernel
from a file descriptor (FileSender), or from buffers the caller fills (BufferSender).

A plain local blob needs no per-chunk work on its way out (no decryption, no
checksum: the ETag is in the catalog), so the bytes need not pass through
Python at all: ``os.sendfile`` moves them from the page cache to the socket.
Through Twisted's transport each MiB was read into a buffer, copied into the
transport's buffer and sent 128 KiB per reactor turn; that cost a core at
about 700 MB/s, where nginx, with sendfile, spends a fifth of that.

Twisted has no sendfile, so this writes beside the transport: on a duplicate
of its socket, registered with the reactor as a writer of its own (the reactor
keys its registrations by descriptor number, so the transport's own reads and
writes are untouched), and only once the transport's buffer is empty (the
response head goes out through it first). Nothing else writes to the
connection meanwhile: the response owns it until it finishes.

What the transport gave for free is kept: backpressure (the kernel sends only
what the socket takes; the writer waits for it to be writable again), the send
timeout for a client that reads nothing (``ConnectionLimits.send_timeout``,
then the connection is aborted, as the channel's own clock does), the bytes-out
count of the metering, and a stop from the request's cancellation.

BufferSender serves bodies Python must compute (an encrypted blob opened on its
way out, encryption/direct.py): each buffer goes to the socket as it is, without
the transport's copy, as much per call as the socket takes.

Only plain TCP: over TLS the bytes must be encrypted in user space, and the
caller falls back to the ordinary path (``send_file`` and ``buffer_sender`` answer None).
"""

from __future__ import annotations

import errno
import os
import socket
from collections import deque
from typing import Any

from twisted.internet import tcp
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IDelayedCall
from twisted.logger import Logger
from twisted.python.failure import Failure

from vaultaire.api.deadlines import DEFAULT_LIMITS, ConnectionLimits

log = Logger()

# One sendfile call moves at most this much: the socket's buffer takes less anyway,
# and a bound keeps one connection from holding the reactor long.
MAX_CALL = 16 * 1024 * 1024


def _cork(fd: int, on: bool) -> None:
    """TCP_CORK on the socket (nginx's ``tcp_nopush``): while a body is sent, only full
    segments leave; taking it off sends the rest at once. Measured on a 1 GiB GET: 2.0 ->
    2.8 GB/s, the kernel's CPU per GiB 0.50 -> 0.36 s (bench/run.py: nginx 0.34)."""
    if not hasattr(socket, "TCP_CORK"):  # Linux only; elsewhere segments go as they are
        return
    try:
        sock = socket.socket(fileno=fd)
    except OSError:
        return  # the connection is gone: nothing left to send either way
    try:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_CORK, int(on))
    except OSError:
        pass  # as above
    finally:
        sock.detach()  # the descriptor stays ours (closed in _end)


class ClientGone(Exception):
    """The client closed or reset the connection while its body was being sent."""


def sendable(transport: Any) -> bool:
    """True for a plain TCP transport (not TLS, not a test's in-memory one) still open."""
    return (
        isinstance(transport, tcp.Connection)
        and not getattr(transport, "TLS", False)
        and bool(transport.connected)
        and not transport.disconnecting
    )


def _transport_idle(transport: Any) -> bool:
    # Twisted's FileDescriptor keeps what it has not sent yet in dataBuffer (from offset)
    # and _tempDataBuffer; our bytes may only follow once all of it is on the socket.
    return len(transport.dataBuffer) == transport.offset and not transport._tempDataLen


class SocketSender:
    """Sends ``count`` bytes to a TCP transport's socket, beside the transport.

    ``done`` fires with the bytes sent, or fails with ClientGone (or the OSError of
    the source). The sender writes on a duplicate of the socket, so whoever closes
    the original (the transport lost) never makes it write to a descriptor number
    the process has reused for something else. Subclasses say where the bytes come
    from (``_push``) and what to release at the end (``_release``).
    """

    def __init__(
        self,
        reactor: Any,
        transport: Any,
        count: int,
        on_sent: Any,
        limits: ConnectionLimits = DEFAULT_LIMITS,
        on_timeout: Any = None,
    ) -> None:
        self._reactor = reactor
        self._transport = transport
        self._socket: int | None = os.dup(transport.fileno())
        self._remaining = count
        self._sent = 0
        self._on_sent = on_sent
        self._limits = limits
        self._on_timeout = on_timeout
        self._progress = True
        self._clock: IDelayedCall | None = None
        self._writing = False
        self._halted = False
        # Cancelling it (the reader stopped) stops the sending.
        self.done: Deferred[int] = Deferred(lambda _: self.stop())

    # -- IWriteDescriptor, for the reactor

    def fileno(self) -> int:
        return -1 if self._socket is None else self._socket

    def logPrefix(self) -> str:
        return type(self).__name__

    def doWrite(self) -> None:
        self._send()

    def connectionLost(self, reason: Failure) -> None:
        # The reactor drops us: the client reset the connection (our descriptor saw it before the
        # transport did), or the reactor closes down. As for a send that fails: the connection is
        # torn down, and its loss cancels the request, which stops this sender. Ending ``done``
        # here instead would fail the request before it knows its client is gone, and a lost
        # client would be logged as an internal error.
        self._abort()

    # -- the sending

    def start(self) -> Deferred[int]:
        if self._remaining <= 0:
            self._end(None)
        else:
            self._clock = self._reactor.callLater(self._limits.send_timeout, self._check_progress)
            self._begin()
            self._send()
        return self.done

    def _begin(self) -> None:
        assert self._socket is not None
        _cork(self._socket, True)

    def _send(self) -> None:
        if self._socket is None or self._halted:
            return
        if not _transport_idle(self._transport):
            # The response head (or anything before it) is still in the transport's
            # buffer; it flushes on the same writable events, then our bytes follow.
            self._want_writable()
            return
        try:
            while self._remaining > 0:
                n = self._push(self._socket, min(self._remaining, MAX_CALL))
                self._remaining -= n
                self._sent += n
                self._progress = True
                self._on_sent(n)
        except BlockingIOError:
            self._want_writable()
            return
        except (BrokenPipeError, ConnectionError):
            # The client is gone: the connection is torn down, and its loss cancels the
            # request, which stops this sender (as a vanished client's transport does).
            self._abort()
            return
        except OSError as e:
            self._end(e)
            return
        self._drained()

    def _drained(self) -> None:
        """Everything there is has been sent."""
        self._end(None)

    def _push(self, socket: int, most: int) -> int:
        """Write up to ``most`` bytes to ``socket`` in one call: how many went."""
        raise NotImplementedError

    def _release(self) -> None:
        """Let go of the source, at the end."""

    def _want_writable(self) -> None:
        if not self._writing:
            self._writing = True
            self._reactor.addWriter(self)

    def _waiting_for_source(self) -> bool:
        """True while there is nothing to send: the client is not the one being slow."""
        return False

    def _check_progress(self) -> None:
        self._clock = None
        if self._socket is None or self._halted:
            return
        if self._progress or self._waiting_for_source():
            self._progress = False
            self._clock = self._reactor.callLater(self._limits.send_timeout, self._check_progress)
            return
        log.debug("dropped a client that read nothing for {seconds}s", seconds=self._limits.send_timeout)
        if self._on_timeout is not None:
            self._on_timeout()
        self._abort()

    def _abort(self) -> None:
        self._halt()
        if self._transport.connected and not getattr(self._transport, "disconnected", False):
            self._transport.abortConnection()

    def _halt(self) -> None:
        self._halted = True
        if self._writing:
            self._writing = False
            self._reactor.removeWriter(self)
        if self._clock is not None and self._clock.active():
            self._clock.cancel()
        self._clock = None

    def stop(self) -> None:
        """Stop sending (the request was cancelled); ``done`` fails with ClientGone."""
        self._end(ClientGone("stopped before the end"))

    def _end(self, error: BaseException | None) -> None:
        if self._socket is None:
            return
        self._halt()
        _cork(self._socket, False)  # what is left of the body goes now, not after the kernel's 200 ms
        os.close(self._socket)
        self._release()
        self._socket = None
        if self.done.called:
            return
        if error is None:
            self.done.callback(self._sent)
        else:
            self.done.errback(error)


class FileSender(SocketSender):
    """Sends ``count`` bytes of ``fd`` from ``offset``, by the kernel (sendfile).

    It reads a duplicate of ``fd``, for the same reason it writes a duplicate of the socket.
    """

    def __init__(
        self,
        reactor: Any,
        transport: Any,
        fd: int,
        offset: int,
        count: int,
        on_sent: Any,
        limits: ConnectionLimits = DEFAULT_LIMITS,
        on_timeout: Any = None,
    ) -> None:
        super().__init__(reactor, transport, count, on_sent, limits, on_timeout)
        self._file = os.dup(fd)
        self._offset = offset

    def _push(self, socket: int, most: int) -> int:
        n = os.sendfile(socket, self._file, self._offset, most)
        if n == 0:
            raise OSError(errno.EIO, "the blob is shorter than the catalog says")
        self._offset += n
        return n

    def _release(self) -> None:
        os.close(self._file)


class BufferSender(SocketSender):
    """Sends the buffers given to ``send``, one after another, until ``close``.

    Each buffer goes as it is (no copy into the transport's buffer) and as much per
    system call as the socket takes (not the transport's 128 KiB). The next buffer
    may be queued while one is being sent, so the socket never waits for its writer
    between two. ``send`` answers a Deferred that fires once that buffer is on the
    socket (it may be refilled then); ``done`` fires after ``close`` and the last one.
    """

    def __init__(
        self,
        reactor: Any,
        transport: Any,
        on_sent: Any,
        limits: ConnectionLimits = DEFAULT_LIMITS,
        on_timeout: Any = None,
    ) -> None:
        super().__init__(reactor, transport, 0, on_sent, limits, on_timeout)
        self._queue: deque[tuple[memoryview, Deferred[int]]] = deque()
        self._at = 0  # bytes of the queue's first buffer already sent
        self._finished: list[tuple[Deferred[int], int]] = []  # fired once the sending loop is out
        self._closed = False

    def start(self) -> Deferred[int]:
        self._clock = self._reactor.callLater(self._limits.send_timeout, self._check_progress)
        self._begin()
        return self.done

    def send(self, data: Any) -> Deferred[int]:
        view = memoryview(data).cast("B")
        sent: Deferred[int] = Deferred()
        if self._socket is None or self._closed:
            sent.errback(ClientGone("the sending has ended"))
            return sent
        self._queue.append((view, sent))
        self._remaining += len(view)
        self._send()
        self._fire_finished()
        return sent

    def close(self) -> None:
        """No more buffers: ``done`` fires once the queued ones are sent."""
        self._closed = True
        if not self._queue:
            self._end(None)

    def _waiting_for_source(self) -> bool:
        return not self._queue

    def _push(self, socket: int, most: int) -> int:
        view, sent = self._queue[0]
        n = os.write(socket, view[self._at : self._at + most])
        self._at += n
        if self._at == len(view):
            self._queue.popleft()
            self._at = 0
            # Fired after the loop: a callback may queue the next buffer at once.
            self._finished.append((sent, len(view)))
        return n

    def doWrite(self) -> None:
        super().doWrite()
        self._fire_finished()

    def _drained(self) -> None:
        if self._closed:
            self._end(None)
        elif self._writing:
            # Nothing to send until the next buffer comes: no writable events meanwhile.
            self._writing = False
            self._reactor.removeWriter(self)

    def _fire_finished(self) -> None:
        finished, self._finished = self._finished, []
        for sent, size in finished:
            sent.callback(size)

    def _release(self) -> None:
        self._fire_finished()
        queued, self._queue = self._queue, deque()
        for _, sent in queued:
            sent.errback(ClientGone("the sending ended before this buffer"))
