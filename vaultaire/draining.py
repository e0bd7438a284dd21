"""Letting a stopping process finish what it has started before its event loop ends.

Twisted ends a process by cutting every connection, data still buffered
included. A stopping process, a worker being replaced (SIGHUP) or stopped as
much as a single-process daemon stopped with SIGTERM, first closes its
listening socket (other workers, if any, take the new connections), then
waits for its requests in flight, then closes its connections gently: a
close that sends what is buffered first. Only then does its event loop stop.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from twisted.internet.task import deferLater

from vaultaire.api.site import S3Site

__all__ = ["drain"]

_POLL_SECONDS = 0.05


async def drain(site: S3Site, in_flight: Callable[[], float], reactor: Any, timeout: float) -> None:
    """Wait for the requests in flight, then for the connections to close; at most ``timeout`` seconds."""
    deadline = reactor.seconds() + timeout
    site.draining = True  # responses still going out end their connections
    while in_flight() > 0 and reactor.seconds() < deadline:
        await deferLater(reactor, _POLL_SECONDS)
    site.close_gently()
    while site.open_connections() and reactor.seconds() < deadline:
        await deferLater(reactor, _POLL_SECONDS)
