"""The s3 driver's reader: an upstream response body pushed into a consumer, with backpressure."""

from __future__ import annotations

from collections import deque
from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IConsumer, IPushProducer
from twisted.internet.protocol import Protocol, connectionDone
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.client import (
    ResponseDone,
)
from zope.interface import implementer

from vaultaire.drivers.s3_wire import Discard, body_producer
from vaultaire.errors import DriverError, DriverUnavailable

log = Logger()

READ_AHEAD = 2 * 2**20  # bytes a reader takes from the upstream while its consumer is paused


@implementer(IPushProducer)
class S3BlobReader:
    """The upstream response body, pushed into the consumer.

    While the consumer is paused, up to READ_AHEAD bytes more are taken from the
    upstream and held, and only then is the upstream connection paused: the
    consumer's pauses are short and frequent (every time the client socket's buffer
    fills), and pausing the upstream on each would leave both connections idle in
    turn. Memory per reader stays under READ_AHEAD plus one read.
    """

    def __init__(self, reactor: Any, response: Any, expected: int, timeout: float) -> None:
        self._reactor = reactor
        self._response = response
        self._expected = expected
        self._timeout = timeout
        self._consumer: IConsumer | None = None
        self._protocol: _BodyReceiver | None = None
        self._written = 0
        self._paused = False
        self._upstream_paused = False
        self._held: deque[bytes] = deque()
        self._held_bytes = 0
        self._end: Failure | None = None  # the upstream has finished; delivered once held bytes are
        self._done: Deferred[int] = Deferred()
        self._last = 0.0
        self._watchdog: Any = None

    def stream_to(self, consumer: IConsumer) -> Deferred[int]:
        self._consumer = consumer
        consumer.registerProducer(self, True)
        self._protocol = _BodyReceiver(self)
        self._last = self._reactor.seconds()
        self._watchdog = self._reactor.callLater(self._timeout, self._check)
        self._response.deliverBody(self._protocol)
        if self._upstream_paused:
            # deliverBody resumes the connection once it has handed over what it
            # buffered, even if we paused it meanwhile: pause it again.
            self._pause_upstream()
        return self._done

    def _pause_upstream(self) -> None:
        self._upstream_paused = True
        if (producer := body_producer(self._protocol)) is not None:
            producer.pauseProducing()

    def _resume_upstream(self) -> None:
        self._upstream_paused = False
        if (producer := body_producer(self._protocol)) is not None:
            producer.resumeProducing()

    # upstream side

    def received(self, data: bytes) -> None:
        if self._consumer is None:
            return
        self._last = self._reactor.seconds()
        if self._paused or self._held:
            self._held.append(data)
            self._held_bytes += len(data)
            if self._held_bytes >= READ_AHEAD:
                self._pause_upstream()
            return
        self._written += len(data)
        self._consumer.write(data)

    def ended(self, reason: Failure) -> None:
        self._end = reason
        if not self._held:
            self._finish()

    def _finish(self) -> None:
        self._cancel_watchdog()
        consumer, self._consumer = self._consumer, None
        if consumer is not None:
            consumer.unregisterProducer()
        if self._done.called:
            return
        assert self._end is not None
        if self._end.check(ResponseDone) and self._written == self._expected:
            self._done.callback(self._written)
        else:
            self._done.errback(
                DriverUnavailable(f"upstream read ended after {self._written} of {self._expected} bytes")
            )

    # an upstream that sends nothing for `timeout` while we wait for it has stalled

    def _check(self) -> None:
        self._watchdog = None
        if self._consumer is None:
            return
        waiting_for_upstream = not self._paused and not self._upstream_paused
        idle = self._reactor.seconds() - self._last
        if waiting_for_upstream and idle >= self._timeout:
            if (producer := body_producer(self._protocol)) is not None:
                producer.stopProducing()
            return
        if not waiting_for_upstream:
            self._last = self._reactor.seconds()  # a slow client is not a stalled upstream
        self._watchdog = self._reactor.callLater(max(0.1, self._timeout - idle), self._check)

    def _cancel_watchdog(self) -> None:
        if self._watchdog is not None and self._watchdog.active():
            self._watchdog.cancel()
        self._watchdog = None

    # consumer side

    def pauseProducing(self) -> None:
        self._paused = True

    def resumeProducing(self) -> None:
        self._paused = False
        while self._held and not self._paused and self._consumer is not None:
            data = self._held.popleft()
            self._held_bytes -= len(data)
            self._written += len(data)
            self._consumer.write(data)
        if self._paused or self._consumer is None:
            return
        if self._end is not None:
            self._finish()
        elif self._upstream_paused:
            self._last = self._reactor.seconds()
            self._resume_upstream()

    def stopProducing(self) -> None:
        self.stop()

    def stop(self) -> None:
        self._cancel_watchdog()
        self._consumer = None
        self._held.clear()
        self._held_bytes = 0
        if not self._done.called:
            self._done.errback(DriverError("reader stopped before the end"))
            self._done.addErrback(lambda f: None)
        if (producer := body_producer(self._protocol)) is not None:
            producer.stopProducing()
        elif self._protocol is None:
            self._response.deliverBody(Discard())


class _BodyReceiver(Protocol):
    def __init__(self, reader: S3BlobReader) -> None:
        self._reader = reader

    def dataReceived(self, data: bytes) -> None:
        self._reader.received(data)

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self._reader.ended(reason)
