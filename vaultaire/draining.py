"""Letting a stopping worker finish what it has started before its event loop ends.

Twisted ends a process by cutting every connection, data still buffered
included. A worker being replaced (SIGHUP) or stopped first closes its
listening socket (the other workers take the new connections), then waits
for its requests in flight, then closes its connections gently: a close
that sends what is buffered first. Only then does its event loop stop.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from typing import Any

from twisted.internet.task import deferLater

from vaultaire.api.http import S3Site

__all__ = ["DrainingSite", "drain"]

_POLL_SECONDS = 0.05


class DrainingSite(S3Site):
    """An S3Site that knows its open connections (weakly: no cost per request)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._channels: weakref.WeakSet[Any] = weakref.WeakSet()

    def buildProtocol(self, addr: Any) -> Any:
        channel = super().buildProtocol(addr)
        if channel is not None:
            self._channels.add(channel)
        return channel

    def open_connections(self) -> list[Any]:
        return [c for c in list(self._channels) if c.transport is not None and c.transport.connected]

    def close_gently(self) -> None:
        for channel in self.open_connections():
            channel.transport.loseConnection()  # after the buffered bytes are sent


async def drain(site: DrainingSite, in_flight: Callable[[], float], reactor: Any, timeout: float) -> None:
    """Wait for the requests in flight, then for the connections to close; at most ``timeout`` seconds."""
    deadline = reactor.seconds() + timeout
    while in_flight() > 0 and reactor.seconds() < deadline:
        await deferLater(reactor, _POLL_SECONDS)
    site.close_gently()
    while site.open_connections() and reactor.seconds() < deadline:
        await deferLater(reactor, _POLL_SECONDS)
