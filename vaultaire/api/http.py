"""Our own HTTP request and channel classes: uploads stream, decisions come first.

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
from collections import Counter
from collections.abc import Callable, Iterable
from typing import Any, cast

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IDelayedCall, ISSLTransport
from twisted.internet.protocol import Protocol, connectionDone
from twisted.logger import Logger
from twisted.protocols.tls import TLSMemoryBIOProtocol
from twisted.python.failure import Failure
from twisted.web import http, server

from vaultaire.api.deadlines import DEFAULT_LIMITS, ConnectionLimits, Deadlines
from vaultaire.api.errors import S3Error
from vaultaire.api.sendfile import BufferSender, FileSender, SocketSender, sendable
from vaultaire.engine.pipe import BytePipe
from vaultaire.errors import IncompleteBody

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
_BODY_METHODS = (b"PUT", b"POST")


def _is_tls(transport: Any) -> bool:
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


# After an early answer, how long and how much of the unread body is read and dropped.
LINGER_SECONDS = 5.0
LINGER_BYTES = 64 * 2**20
# A connection refused for being one too many is held this long at most.
REFUSAL_LINGER_SECONDS = 1.0


class S3Channel(Deadlines, http.HTTPChannel):
    """Renders a request with a body at end of headers, answers 100-continue on demand,
    and drops clients too slow to be anything but an attack or a dead peer."""

    linger_on_close = False
    _lingering = False
    _linger_call: IDelayedCall | None = None
    _lingered = 0

    @property
    def stream(self) -> Stream:
        """The transport, typed as what it is (see Stream)."""
        return cast(Stream, self.transport)

    def connectionMade(self) -> None:
        super().connectionMade()
        self._start_head_clock()

    # -- lingering close

    def loseConnection(self) -> None:
        """Close after an early answer without losing it to a TCP reset.

        A client that did not wait for 100 Continue is still sending its body.
        Closing a socket with unread bytes makes the kernel send RST, and the
        client may then lose the response it had not read yet (the error it
        needed). So: send the response (and, over plain TCP, a FIN), read and
        drop what is still coming for a while, then close ("lingering close",
        as nginx does). Over TLS there is no half-close: the socket under the
        TLS layer must not be shut for writing while TLS still has to write
        (its response bytes, its close_notify); the response says
        ``Connection: close`` and the client ends the connection once it has
        read it.
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
        self._stop_clocks()
        # The transport, or Twisted's stand-in when it is no push producer: both unregister.
        cast(Stream, self._networkProducer).unregisterProducer()
        if not _is_tls(self.transport):
            self.stream.loseWriteConnection()
        self.stream.resumeProducing()  # the body pipe may have paused the socket
        self._linger_call = self.callLater(LINGER_SECONDS, self._end_linger)

    def _end_linger(self) -> None:
        self._linger_call = None
        if self.transport is not None:
            self.transport.loseConnection()

    def dataReceived(self, data: bytes) -> None:
        if self._lingering:
            self._lingered += len(data)
            if self._lingered > LINGER_BYTES:
                self.stream.loseConnection()
            return
        if self._awaiting_head and self._head_call is None:
            self._start_head_clock()
        super().dataReceived(data)

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self._stop_clocks()
        if self._linger_call is not None and self._linger_call.active():
            self._linger_call.cancel()
        self._linger_call = None
        site = getattr(self, "site", None)
        if isinstance(site, S3Site):
            site.forget(self)
        super().connectionLost(reason)

    # -- deadlines

    # -- request framing

    def allHeadersReceived(self) -> None:
        if self._head_call is not None:
            self._head_call.cancel()
            self._head_call = None
        self._awaiting_head = False
        req = self.requests[-1]
        req.parseCookies()
        self.persistent = self.checkPersistence(req, self._version)
        req.gotLength(self.length)
        if self.length == 0:
            if self._command in _BODY_METHODS and not req.requestHeaders.hasHeader(b"Content-Length"):
                # Neither a length nor chunked framing (or "Transfer-Encoding: identity"):
                # the body's end cannot be known. Answered 411 from process(), then closed.
                req.length_missing = True
                self.persistent = False
            return  # no body: rendered as usual from allContentReceived
        expect = req.requestHeaders.getRawHeaders(b"Expect")
        expect_continue = bool(expect) and expect[0].lower() == b"100-continue" and self._version == b"HTTP/1.1"
        req.render_early(self._command, self._path, self._version, expect_continue)

    def allContentReceived(self) -> None:
        if self._body_call is not None:
            self._body_call.cancel()
            self._body_call = None
        self._body_pipe = None
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

    def requestDone(self, request: Any) -> None:
        self._awaiting_head = True
        super().requestDone(request)
        if self._awaiting_head and self._head_call is None and self._buffer and not self._lingering:
            self._start_head_clock()  # part of the next request's head is already here

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
        self.stream.writeSequence(out)

    def send_continue(self) -> None:
        self._send100Continue()

    # The transport itself, not self._networkProducer: over TLS that is a no-op
    # (TLSMemoryBIOProtocol does not provide IPushProducer), and an upload faster
    # than the disk would pile up in memory; the TLS wrapper passes these calls
    # to the TCP transport under it.
    def pause_body(self) -> None:
        self._body_paused = self._body_excused = True
        self.stream.pauseProducing()

    def resume_body(self) -> None:
        self._body_paused = False
        if not self._waitingForTransport and self.transport is not None:
            self.stream.resumeProducing()


class _Refusal(Protocol):
    """Answers one connection too many with 503 SlowDown, then closes it."""

    def __init__(self, call_later: Any) -> None:
        self._call_later = call_later
        self._close_call: IDelayedCall | None = None

    def connectionMade(self) -> None:
        assert self.transport is not None
        self.transport.write(error_response(S3Error("SlowDown", "The server has too many connections; retry.")))
        if not _is_tls(self.transport):
            cast(Stream, self.transport).loseWriteConnection()  # FIN after the answer; the request is read and dropped
        self._close_call = self._call_later(REFUSAL_LINGER_SECONDS, self.transport.loseConnection)

    def dataReceived(self, data: bytes) -> None:
        pass

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        if self._close_call is not None and self._close_call.active():
            self._close_call.cancel()


class S3Site(server.Site):
    """A Site using our channel and request, with connection limits; it knows its open
    connections, to cap them and to drain them at shutdown. Access logging is the event
    log's job."""

    # Our channel itself, where Twisted's default wraps one in its HTTP/2-negotiating protocol.
    protocol = S3Channel  # type: ignore[assignment]  # HTTPFactory declares the wrapper's type
    requestFactory = S3Request

    def __init__(
        self,
        resource: Any,
        *args: Any,
        limits: ConnectionLimits | None = None,
        on_drop: Callable[[str], None] | None = None,
        **kwargs: Any,
    ) -> None:
        self.limits = limits or DEFAULT_LIMITS
        kwargs.setdefault("timeout", self.limits.idle_timeout)
        super().__init__(resource, *args, **kwargs)
        self._channels: set[S3Channel] = set()
        # Set when the process stops: responses say "Connection: close".
        self.draining = False
        # Connections closed by a limit, by reason: head, body, send, refused.
        self.dropped: Counter[str] = Counter()
        self._on_drop = on_drop

    def startFactory(self) -> None:
        super().startFactory()
        self._fit_open_files_limit()

    def _fit_open_files_limit(self) -> None:
        """Make room for max_connections under RLIMIT_NOFILE, or say that there is none.

        Each connection is a descriptor and requests need more (blobs, the
        catalog). A soft limit below what the cap needs is raised up to the hard
        limit, as Go's runtime does at start (the epoll reactor has no 1024 ceiling).
        """
        try:
            import resource

            soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
            needed = self.limits.max_connections + 256
            if soft == resource.RLIM_INFINITY or soft >= needed:
                return
            raised = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
            if raised > soft:
                resource.setrlimit(resource.RLIMIT_NOFILE, (raised, hard))
                soft = raised
        except (ImportError, OSError, ValueError):
            return
        if soft < needed:
            log.warn(
                "max_connections {connections} leaves no room under the open-files limit {limit}:"
                " requests may get 503 SlowDown for want of descriptors; raise LimitNOFILE or lower"
                " max_connections",
                connections=self.limits.max_connections,
                limit=soft,
            )

    def count_drop(self, reason: str) -> None:
        self.dropped[reason] += 1
        if self._on_drop is not None:
            self._on_drop(reason)

    def buildProtocol(self, addr: Any) -> Any:
        if len(self._channels) >= self.limits.max_connections:
            self.count_drop("refused")
            return _Refusal(self.reactor.callLater)
        channel = super().buildProtocol(addr)
        if channel is not None:
            self._channels.add(channel)
        return channel

    def forget(self, channel: S3Channel) -> None:
        self._channels.discard(channel)

    def open_connections(self) -> list[S3Channel]:
        return [c for c in list(self._channels) if c.transport is not None and c.stream.connected]

    def close_gently(self) -> None:
        for channel in self.open_connections():
            channel.stream.loseConnection()  # after the buffered bytes are sent

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
