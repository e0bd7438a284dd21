"""Our own HTTP channel and site: the request's connection, bounded against slow and stuck clients.

The channel renders a request with a body as soon as its headers are complete (http.py's
S3Request asks for the body, and only then is ``100 Continue`` sent), writes S3's
lower-case header names, and after an early answer reads and drops what is left of the
body for a while, so the client sees the answer rather than a reset. Slow and stuck
clients are bounded by ``ConnectionLimits`` (deadlines.py); above the connection cap a
connection is answered ``503 SlowDown`` and closed.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Any, cast

from twisted.internet.interfaces import IDelayedCall
from twisted.internet.protocol import Protocol, connectionDone
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web import http, server

from vaultaire.api.deadlines import DEFAULT_LIMITS, ConnectionLimits, Deadlines
from vaultaire.api.errors import S3Error
from vaultaire.api.header_lines import OneStepHeaders
from vaultaire.api.http import BODY_METHODS, S3Request, Stream, error_response, is_tls
from vaultaire.api.request_line import install as install_request_line_parser

log = Logger()

# Every request line is checked in C, not byte by byte in Python (request_line.py).
TWISTED_REQUEST_LINE_PARSER = install_request_line_parser()


# After an early answer, how long and how much of the unread body is read and dropped.
LINGER_SECONDS = 5.0
LINGER_BYTES = 64 * 2**20
# A connection refused for being one too many is held this long at most.
REFUSAL_LINGER_SECONDS = 1.0


class S3Channel(Deadlines, OneStepHeaders, http.HTTPChannel):
    """Renders a request with a body at end of headers, answers 100-continue on demand,
    and drops clients too slow to be anything but an attack or a dead peer."""

    linger_on_close = False
    _lingering = False
    _linger_call: IDelayedCall | None = None
    _lingered = 0
    _host: Any = None

    def getHost(self) -> Any:
        # twisted.web asks for every request (a getsockname call); a connection's own address never changes.
        if self._host is None:
            self._host = super().getHost()
        return self._host

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
        if not is_tls(self.transport):
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
            if self._command in BODY_METHODS and not req.requestHeaders.hasHeader(b"Content-Length"):
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
        # One bytes, not writeSequence: the transport checks and queues each piece it is given.
        self.stream.write(b"".join(out))

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
        if not is_tls(self.transport):
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
