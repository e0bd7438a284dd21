"""Our own HTTP request class: uploads stream, decisions come first (its channel: site.py).

Twisted's stock Request spools the whole body to memory or a temp file and
renders only after the last byte, and its channel answers ``Expect:
100-continue`` before anything is checked. Here a request with a body is
rendered as soon as its headers are complete; the handler authenticates,
checks the container, and only then asks for the body (``open_body``), which
is when ``100 Continue`` goes out. The body then streams through an
``BytePipe`` with backpressure on the socket.

Slow and stuck clients are bounded (``ConnectionLimits``): a deadline for a
whole request head, a minimum body rate, a send timeout for a client that
stops reading, an idle timeout between requests, and a cap on connections,
above which a connection is answered ``503 SlowDown`` and closed.
"""

from __future__ import annotations

import io
import secrets
import time
import typing
from collections.abc import Callable, Iterable
from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import ISSLTransport
from twisted.logger import Logger
from twisted.protocols.tls import TLSMemoryBIOProtocol
from twisted.python.failure import Failure
from twisted.web import http, server

from vaultaire.api.errors import S3Error
from vaultaire.api.sendfile import BufferSender, FileSender, SocketSender, sendable
from vaultaire.engine.pipe import BytePipe
from vaultaire.errors import IncompleteBody

if typing.TYPE_CHECKING:
    from vaultaire.api.site import S3Channel

log = Logger()


class Stream(typing.Protocol):
    """A channel's transport as it is: TCP, or TLS handing these calls to the TCP under it.
    Its declared type, ITransport, says less (no half-close, no producer or consumer side)."""

    connected: int

    def write(self, data: bytes) -> None: ...

    def writeSequence(self, data: Iterable[bytes]) -> None: ...

    def loseConnection(self) -> None: ...

    def loseWriteConnection(self) -> None: ...

    def abortConnection(self) -> None: ...

    def pauseProducing(self) -> None: ...

    def resumeProducing(self) -> None: ...

    def unregisterProducer(self) -> None: ...


# Methods whose requests S3 reads a body for: without a length they are refused (411),
# never read as empty with the body left to be parsed as the next request.
BODY_METHODS = (b"PUT", b"POST")


def is_tls(transport: Any) -> bool:
    return isinstance(transport, TLSMemoryBIOProtocol) or ISSLTransport.providedBy(transport)


def error_response(error: S3Error) -> bytes:
    """A whole HTTP response for an error answered below the S3 layer, closing the connection."""
    body = error.to_xml("/", secrets.token_hex(8).upper())
    reason = http.RESPONSES.get(error.status, b"Error")
    return (
        b"HTTP/1.1 %d %s\r\nContent-Type: application/xml\r\nContent-Length: %d\r\n"
        b"Connection: close\r\nServer: Vaultaire\r\n\r\n%s" % (error.status, reason, len(body), body)
    )


class DateHeader:
    """The Date header's value, formatted once per second rather than once per response."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._second = -1
        self._value = b""

    def __call__(self) -> bytes:
        second = int(self._clock())
        if second != self._second:
            self._value = http.datetimeToString(second)
            self._second = second
        return self._value


date_header = DateHeader()


def incomplete(expected: int | None, received: int) -> IncompleteBody:
    if expected is None:
        return IncompleteBody(f"the client went away after {received} bytes")
    return IncompleteBody(f"the client went away after {received} of {expected} bytes")


class S3Request(server.Request):
    """A request whose body is streamed to its handler instead of spooled."""

    channel: S3Channel  # always ours (S3Site's); None once the request is done, as in Twisted

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("parsePOSTFormSubmission", False)  # never parse a form into memory
        super().__init__(*args, **kwargs)
        self.body: BytePipe | None = None
        self.body_length: int | None = 0
        self.rendered_early = False
        # A PUT or POST that gave neither Content-Length nor Transfer-Encoding.
        self.length_missing = False
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
        self._received(command, path, version)

    def requestReceived(self, command: bytes, path: bytes, version: bytes) -> None:
        if self.rendered_early:
            if self.body is not None:
                self.body.finish()
            return
        self._received(command, path, version)

    def _received(self, command: bytes, path: bytes, version: bytes) -> None:
        """twisted.web's ``requestReceived`` without what S3 never uses: the query parsed into
        ``args`` (now parsed only if read; the S3 layer parses the query itself) and the POST
        form parsing (off: a form is never read into memory)."""
        assert self.content is not None
        self.content.seek(0, 0)
        self.method, self.uri = command, path
        self.clientproto = version
        self.path = path.split(b"?", 1)[0]
        self._args = None
        self.process()

    _args: dict[bytes, list[bytes]] | None = None

    @property
    def args(self) -> dict[bytes, list[bytes]]:
        if self._args is None:
            query = self.uri.split(b"?", 1)
            self._args = http.parse_qs(query[1], 1) if len(query) == 2 else {}
        return self._args

    @args.setter
    def args(self, value: dict[bytes, list[bytes]]) -> None:
        self._args = value

    def process(self) -> None:
        if self.length_missing:
            # Twisted reads a missing length as 0: the body would be parsed as the next request.
            self.answer_error(S3Error("MissingContentLength"))
            return
        site = self.channel.site  # type: ignore[attr-defined]  # HTTPChannel.site is set by Site.buildProtocol
        resource = site.resource
        if not getattr(resource, "isLeaf", False) or self.path == b"*":
            super().process()
            return
        # A leaf resource (the S3 front door) takes every path: twisted.web's percent-decoding of
        # each segment into postpath, for a traversal that stops at once, is skipped; the Date
        # header is formatted once a second.
        self.site = site
        self.setHeader(b"Server", b"Vaultaire")
        self.setHeader(b"Date", date_header())
        self.prepath = []
        self.postpath = []
        try:
            self.render(resource)
        except BaseException:
            self.processingFailed(Failure())

    def answer_error(self, error: S3Error) -> None:
        """Answer an error found below the S3 layer (the channel's own checks)."""
        body = error.to_xml(self.uri.decode("latin-1").split("?", 1)[0], secrets.token_hex(8).upper())
        self.setResponseCode(error.status)
        self.setHeader(b"Content-Type", b"application/xml")
        self.setHeader(b"Content-Length", str(len(body)).encode())
        self.setHeader(b"Server", b"Vaultaire")
        self.write(body)
        self.finish()

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
        if self.channel is not None:
            self.channel.watch_body(self.body)
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

    def send_file(self, fd: int, offset: int, count: int) -> Deferred[int] | None:
        """Send ``count`` bytes of ``fd`` from ``offset`` as (the rest of) the body, by the
        kernel (sendfile); None when this connection cannot (TLS, a HEAD, no length, gone):
        then the caller writes the bytes itself. See api/sendfile.py."""
        if not self.sends_directly():
            return None
        return self._started(FileSender(fd=fd, offset=offset, count=count, **self._head_sent()))

    def buffer_sender(self) -> BufferSender | None:
        """A sender of the rest of the body, buffer by buffer, straight to the socket (started;
        the caller closes it after the last buffer); None when this connection cannot (as send_file)."""
        if not self.sends_directly():
            return None
        sender = BufferSender(**self._head_sent())
        self._started(sender)
        return sender

    def sends_directly(self) -> bool:
        """True if the body may go to the socket beside the transport (send_file, buffer_sender)."""
        channel = self.channel
        return not (
            channel is None
            or self._disconnected
            or self.method == b"HEAD"
            or not self.responseHeaders.hasHeader(b"Content-Length")  # never inside chunked framing
            or not sendable(channel.transport)
        )

    def _head_sent(self) -> dict[str, Any]:
        """Send the response head through the transport (the body follows it), and answer what
        a sender of the body needs from this connection."""
        channel = self.channel
        assert channel is not None
        self.write(b"")
        return {
            "reactor": channel.transport.reactor,
            "transport": channel.transport,
            "on_sent": self._count_sent,
            "limits": channel.limits,
            "on_timeout": lambda: channel._dropped("send"),
        }

    def _started(self, sender: SocketSender) -> Deferred[int]:
        # The request's loss stops it too, whoever else was told.
        self.notifyFinish().addErrback(lambda _: sender.stop())
        return sender.start()

    def _count_sent(self, n: int) -> None:
        self.bytes_out += n
        self.sentLength += n

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
        if (self.body_pending or self.length_missing) and self.channel is not None:
            self.setHeader(b"Connection", b"close")
            self.channel.persistent = False
            self.channel.linger_on_close = True
        elif self.channel is not None and getattr(getattr(self.channel, "site", None), "draining", False):
            # The process is stopping: a client must not send its next request down this connection.
            self.setHeader(b"Connection", b"close")
            self.channel.persistent = False

    def connectionLost(self, reason: Failure) -> None:
        if self.body is not None and not self.body.ended:
            self.body.fail(incomplete(self.body_length, self.body.received))
        super().connectionLost(reason)


class LazyBody:
    def __init__(self, request: S3Request) -> None:
        self._request = request
        self._body: BytePipe | None = None

    def read(self) -> Deferred[bytes]:
        if self._body is None:
            self._body = self._request.open_body()
        return self._body.read()
