"""Our own HTTP request and channel classes: uploads stream, decisions come first.

Twisted's stock Request spools the whole body to memory or a temp file and
renders only after the last byte, and its channel answers ``Expect:
100-continue`` before anything is checked. Here a request with a body is
rendered as soon as its headers are complete; the handler authenticates,
checks the container, and only then asks for the body (``open_body``), which
is when ``100 Continue`` goes out. The body then streams through an
``BytePipe`` with backpressure on the socket.
"""

from __future__ import annotations

import io
from typing import Any

from twisted.internet.defer import Deferred
from twisted.python.failure import Failure
from twisted.web import http, server

from vaultaire.engine.pipe import BytePipe
from vaultaire.errors import IncompleteBody


def incomplete(expected: int | None, received: int) -> IncompleteBody:
    if expected is None:
        return IncompleteBody(f"the client went away after {received} bytes")
    return IncompleteBody(f"the client went away after {received} of {expected} bytes")


class S3Request(server.Request):
    """A request whose body is streamed to its handler instead of spooled."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("parsePOSTFormSubmission", False)  # never parse a form into memory
        super().__init__(*args, **kwargs)
        self.body: BytePipe | None = None
        self.body_length: int | None = 0
        self.rendered_early = False
        self._continue_wanted = False
        self._continue_sent = False
        self.bytes_out = 0

    # -- body intake (called by the channel)

    def gotLength(self, length: int | None) -> None:
        self.body_length = length
        self.content = io.BytesIO()  # stays empty: twisted.web code may look at it
        if length != 0:
            channel = self.channel
            self.body = BytePipe(channel.pause_body, channel.resume_body)

    def handleContentChunk(self, data: bytes) -> None:
        if self.body is not None:
            self.body.feed(data)

    def render_early(self, command: bytes, path: bytes, version: bytes, expect_continue: bool) -> None:
        """Dispatch at end of headers; the body follows through ``self.body``."""
        self.rendered_early = True
        self._continue_wanted = expect_continue
        http.Request.requestReceived(self, command, path, version)

    def requestReceived(self, command: bytes, path: bytes, version: bytes) -> None:
        if self.rendered_early:
            if self.body is not None:
                self.body.finish()
            return
        super().requestReceived(command, path, version)

    def open_body(self) -> BytePipe:
        """The handler accepts the body: send ``100 Continue`` if the client waits for it."""
        if self.body is None:
            self.body = BytePipe(lambda: None, lambda: None)
            self.body.finish()
            return self.body
        if self._continue_wanted and not self._continue_sent and not self.body.ended:
            self._continue_sent = True
            if self.channel is not None:
                self.channel.send_continue()
        return self.body

    def lazy_body(self) -> LazyBody:
        """The body, opened (and ``100 Continue`` sent) only when first read.

        The engine checks conditions and quota before it reads, so a refusal
        reaches a client that waits for ``100 Continue`` before it sends a byte.
        """
        return LazyBody(self)

    @property
    def body_pending(self) -> bool:
        """True while part of the body may still be on its way from the client."""
        return self.body is not None and not self.body.ended

    # -- response side

    def write(self, data: bytes) -> None:
        if not self.startedWriting:
            self._close_if_answered_early()
        if self.method != b"HEAD":  # a HEAD response writes no body
            self.bytes_out += len(data)
        super().write(data)

    def finish(self) -> None:
        if not self.startedWriting:
            self._close_if_answered_early()
        super().finish()

    def _close_if_answered_early(self) -> None:
        """Called just before the headers go out.

        Answered before the body was read (an error, or a refused
        100-continue): the rest of the body cannot be parsed as a next
        request, so this connection ends with the response, and the client
        must be told so in these headers, or it would send its next request
        down a connection that is closing.
        """
        if self.body_pending and self.channel is not None:
            self.setHeader(b"Connection", b"close")
            self.channel.persistent = False
            self.channel.linger_on_close = True

    def connectionLost(self, reason: Failure) -> None:
        if self.body is not None and not self.body.ended:
            self.body.fail(incomplete(self.body_length, self.body.received))
        super().connectionLost(reason)


# After an early answer, how long and how much of the unread body is read and dropped.
LINGER_SECONDS = 5.0
LINGER_BYTES = 64 * 2**20


class S3Channel(http.HTTPChannel):
    """Renders a request with a body at end of headers, and answers 100-continue on demand."""

    linger_on_close = False
    _lingering = False
    _linger_call: Any = None
    _lingered = 0

    def loseConnection(self) -> None:
        """Close after an early answer without losing it to a TCP reset.

        A client that did not wait for 100 Continue is still sending its body.
        Closing a socket with unread bytes makes the kernel send RST, and the
        client may then lose the response it had not read yet (the error it
        needed). So: send the response and a FIN, read and drop what is still
        coming for a while, then close ("lingering close", as nginx does).
        """
        if not self.linger_on_close or self._lingering or self.transport is None:
            super().loseConnection()
            return
        if getattr(self.transport, "disconnected", False):
            # Item 9 (helper "input"): a request can finish while its transport is being torn down
            # (a vanished downloader's reader fails inside stopProducing); lingering on a closed
            # socket raised "file descriptor cannot be a negative integer" from the reactor.
            super().loseConnection()
            return
        self._lingering = True
        self._networkProducer.unregisterProducer()
        self.transport.loseWriteConnection()
        self.transport.resumeProducing()  # the body pipe may have paused the socket
        from twisted.internet import reactor

        self._linger_call = reactor.callLater(LINGER_SECONDS, self.transport.loseConnection)

    def dataReceived(self, data: bytes) -> None:
        if self._lingering:
            self._lingered += len(data)
            if self._lingered > LINGER_BYTES:
                self.transport.loseConnection()
            return
        super().dataReceived(data)

    def connectionLost(self, reason: Failure) -> None:
        if self._linger_call is not None and self._linger_call.active():
            self._linger_call.cancel()
        super().connectionLost(reason)

    def allHeadersReceived(self) -> None:
        req = self.requests[-1]
        req.parseCookies()
        self.persistent = self.checkPersistence(req, self._version)
        req.gotLength(self.length)
        if self.length == 0:
            return  # no body: rendered as usual from allContentReceived
        expect = req.requestHeaders.getRawHeaders(b"Expect")
        expect_continue = bool(expect) and expect[0].lower() == b"100-continue" and self._version == b"HTTP/1.1"
        req.render_early(self._command, self._path, self._version, expect_continue)

    def allContentReceived(self) -> None:
        if not self.requests or self.requests[-1].finished:
            # The response went out before the body ended; this connection is
            # closing, so only the parser state needs resetting.
            self.length = 0
            self._receivedHeaderCount = 0
            self._receivedHeaderSize = 0
            self._HTTPChannel__first_line = 1
            self._transferDecoder = None
            return
        super().allContentReceived()

    def writeHeaders(self, version: bytes, code: bytes, reason: bytes, headers: Any) -> None:
        # Twisted writes names in Http-Header-Case; S3 sends x-amz-* in lower
        # case, and SDKs keep the case of user metadata names as received.
        # Values were already checked for line breaks by the Headers object.
        out = [version, b" ", code, b" ", reason, b"\r\n"]
        for name, values in headers.getAllRawHeaders():
            if name.startswith(b"X-Amz-"):
                name = name.lower()
            for value in values:
                out.extend((name, b": ", value, b"\r\n"))
        out.append(b"\r\n")
        self.transport.writeSequence(out)

    def send_continue(self) -> None:
        self._send100Continue()

    def pause_body(self) -> None:
        self._networkProducer.pauseProducing()

    def resume_body(self) -> None:
        if not self._waitingForTransport:
            self._networkProducer.resumeProducing()


class S3Site(server.Site):
    """A Site using our channel and request; access logging is the event log's job."""

    protocol = S3Channel
    requestFactory = S3Request

    def log(self, request: Any) -> None:
        pass


class LazyBody:
    def __init__(self, request: S3Request) -> None:
        self._request = request
        self._body: BytePipe | None = None

    def read(self) -> Deferred[bytes]:
        if self._body is None:
            self._body = self._request.open_body()
        return self._body.read()
