"""Deadlines for slow and stuck clients, mixed into the S3 channel.

A request head must arrive whole within ``header_timeout``, whatever its byte
rate (Twisted's idle timeout restarts on every byte, so a head sent at one byte
a second never ends). A body the handler reads must keep ``min_body_rate``
over each ``body_timeout`` window, except while we stopped reading. A
response the client stops reading is aborted after ``send_timeout``, which
also stops its producer and closes the blob it reads.
"""

from __future__ import annotations

from typing import Any

from attrs import frozen
from twisted.internet.interfaces import IDelayedCall
from twisted.logger import Logger

from vaultaire.api.errors import S3Error
from vaultaire.engine.pipe import BytePipe

__all__ = ["DEFAULT_LIMITS", "ConnectionLimits", "Deadlines"]

log = Logger()


@frozen
class ConnectionLimits:
    """How long and how slow a client may be (seconds, bytes per second), and how many."""

    header_timeout: float = 30.0
    body_timeout: float = 60.0
    min_body_rate: int = 500
    send_timeout: float = 60.0
    idle_timeout: float = 75.0
    max_connections: int = 1024


DEFAULT_LIMITS = ConnectionLimits()


class Deadlines:
    """The clocks of one connection; mixed in before ``http.HTTPChannel``, whose state it reads."""

    # Set by the channel: a lingering connection has answered and only drops input.
    _lingering = False
    # The request head's deadline: runs from a request's first byte (or the connection's opening).
    _awaiting_head = True
    _head_call: IDelayedCall | None = None
    # The response's deadline: runs while the client reads nothing of what is sent.
    _send_call: IDelayedCall | None = None
    # The body's rate: checked every body_timeout seconds while the handler reads it.
    _body_call: IDelayedCall | None = None
    _body_pipe: BytePipe | None = None
    _body_mark = 0
    _body_paused = False  # we stopped reading (the handler or disk is behind): not the client's fault
    _body_excused = False
    # From http.HTTPChannel
    callLater: Any
    transport: Any
    _waitingForTransport: bool

    @property
    def limits(self) -> ConnectionLimits:
        return getattr(getattr(self, "site", None), "limits", None) or DEFAULT_LIMITS

    def _start_head_clock(self) -> None:
        self._head_call = self.callLater(self.limits.header_timeout, self._head_timed_out)

    def _head_timed_out(self) -> None:
        self._head_call = None
        self._dropped("head")
        log.debug(
            "dropped a client that did not send a request head within {seconds}s", seconds=self.limits.header_timeout
        )
        self.timeoutConnection()  # type: ignore[attr-defined]  # closes, and aborts if that hangs

    def pauseProducing(self) -> None:
        """The transport's buffer is full: the client is not reading what we send."""
        super().pauseProducing()  # type: ignore[misc]  # a mixin: HTTPChannel, next in the MRO, has it
        if self._send_call is None and not self._lingering:
            self._send_call = self.callLater(self.limits.send_timeout, self._send_timed_out)

    def resumeProducing(self) -> None:
        # Cancelled first: resuming may fill the buffer again at once, and pause with a new deadline.
        if self._send_call is not None:
            self._send_call.cancel()
            self._send_call = None
        super().resumeProducing()  # type: ignore[misc]  # a mixin: HTTPChannel, next in the MRO, has it

    def _send_timed_out(self) -> None:
        self._send_call = None
        self._dropped("send")
        log.debug("dropped a client that read nothing for {seconds}s", seconds=self.limits.send_timeout)
        if self.transport is not None:
            # A close would wait for the unread bytes to drain, forever: abort, which also
            # stops the response's producer (and closes the blob it reads).
            self.transport.abortConnection()

    def watch_body(self, pipe: BytePipe) -> None:
        """Start checking the body's rate (the handler has begun to read it)."""
        if self._body_call is not None or pipe.ended or self._lingering:
            return
        self._body_pipe = pipe
        self._body_mark = pipe.received
        self._body_excused = self._body_paused
        self._body_call = self.callLater(self.limits.body_timeout, self._body_tick)

    def _body_tick(self) -> None:
        self._body_call = None
        pipe = self._body_pipe
        if pipe is None or pipe.ended or self._lingering or self.transport is None:
            return
        limits = self.limits
        arrived = pipe.received - self._body_mark
        excused = self._body_excused or self._body_paused or self._waitingForTransport
        self._body_mark = pipe.received
        self._body_excused = False
        if not excused and (arrived == 0 or arrived < limits.min_body_rate * limits.body_timeout):
            self._dropped("body")
            log.debug(
                "dropped a request body that brought {bytes} bytes in {seconds}s",
                bytes=arrived,
                seconds=limits.body_timeout,
            )
            self._body_pipe = None
            # The handler answers 400 RequestTimeout, and the connection closes after it.
            pipe.fail(S3Error("RequestTimeout"))
            return
        self._body_call = self.callLater(limits.body_timeout, self._body_tick)

    def _dropped(self, reason: str) -> None:
        count = getattr(getattr(self, "site", None), "count_drop", None)
        if count is not None:
            count(reason)

    def _stop_clocks(self) -> None:
        for name in ("_head_call", "_send_call", "_body_call"):
            call = getattr(self, name)
            if call is not None and call.active():
                call.cancel()
            setattr(self, name, None)
        self._body_pipe = None
