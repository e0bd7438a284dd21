"""Listening sockets that several processes share with SO_REUSEPORT.

Each worker opens its own socket on the same address, so the kernel
spreads new connections across the workers evenly. (One socket inherited
by every worker balances badly: whichever process wakes first accepts, and
under load all connections can land in one process.)

Twisted's ``listenTCP`` cannot set SO_REUSEPORT, so the socket is made
here and handed to ``reactor.adoptStreamPort``.
"""

from __future__ import annotations

import errno
import socket
import time
from typing import Any

from attrs import frozen
from twisted.application.service import Service
from twisted.internet import endpoints
from twisted.internet.error import CannotListenError
from twisted.internet.interfaces import IListeningPort, IProtocolFactory

__all__ = [
    "ListenSpec",
    "ReusePortService",
    "listen_backlog",
    "parse_listen",
    "probe_free",
    "reuseport_socket",
    "with_backlog",
]

# Twisted's default backlog is 50: under a burst of connections the rest wait in
# SYN retries for seconds. Production servers (nginx on Linux, Go) ask for more.
DEFAULT_BACKLOG = 1024
SOMAXCONN_PATH = "/proc/sys/net/core/somaxconn"


def listen_backlog(setting: int, somaxconn_path: str = SOMAXCONN_PATH) -> int:
    """The backlog to ask for: the setting (0 means 1024), capped by the kernel's somaxconn.

    Linux silently caps a larger value anyway; capping here keeps what we
    report true.
    """
    wanted = setting or DEFAULT_BACKLOG
    try:
        with open(somaxconn_path) as f:
            return max(1, min(wanted, int(f.read().strip())))
    except (OSError, ValueError):
        return wanted  # not Linux: the kernel caps it its own way


def with_backlog(description: str, backlog: int) -> str:
    """A tcp:/ssl:/unix: endpoint string with ``backlog=`` added unless it names one itself."""
    kind = description.split(":", 1)[0].strip().lower()
    if kind not in ("tcp", "ssl", "unix"):
        return description  # systemd: the socket unit sets it (Backlog=)
    if _names_backlog(description):
        return description
    return f"{description}:backlog={backlog}"


def _names_backlog(description: str) -> bool:
    # Not _parseServer's keywords: it fills in backlog=50 when the string names none.
    return any(part.strip().lower().startswith("backlog=") for part in description.split(":")[1:])


@frozen
class ListenSpec:
    """Where to listen, taken from a ``tcp:`` or ``ssl:`` endpoint string."""

    kind: str  # "tcp" or "ssl"
    interface: str
    port: int
    backlog: int
    tls_context: Any = None  # the ssl: endpoint's context factory

    def with_port(self, port: int) -> ListenSpec:
        return ListenSpec(self.kind, self.interface, port, self.backlog, self.tls_context)

    def endpoint(self, original: str) -> str:
        """``original`` with the port replaced by ``self.port`` (after port 0 was resolved)."""
        kind, _, rest = original.partition(":")
        _, _, options = rest.partition(":")
        return f"{kind}:{self.port}" + (f":{options}" if options else "")


def parse_listen(description: str, backlog: int = DEFAULT_BACKLOG) -> ListenSpec | None:
    """The listen address of a tcp:/ssl: endpoint string; None for any other kind (systemd:, unix:).

    ``backlog`` applies unless the string names one itself.
    """
    kind = description.split(":", 1)[0].strip().lower()
    if kind not in ("tcp", "ssl"):
        return None
    _, args, kwargs = endpoints._parseServer(description, None)
    if kind == "tcp":
        port = int(args[0])
        tls = None
    else:
        port, _factory, tls = args
    chosen = int(kwargs["backlog"]) if _names_backlog(description) else backlog
    return ListenSpec(kind, kwargs.get("interface", ""), int(port), chosen, tls)


def _family(interface: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in interface else socket.AF_INET


def reuseport_socket(spec: ListenSpec) -> socket.socket:
    """A non-blocking listening socket with SO_REUSEPORT; raises CannotListenError."""
    family = _family(spec.interface)
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((spec.interface or ("::" if family == socket.AF_INET6 else ""), spec.port))
        sock.listen(spec.backlog)
        sock.setblocking(False)
    except OSError as e:
        sock.close()
        raise CannotListenError(spec.interface, spec.port, e) from None
    return sock


def probe_free(spec: ListenSpec, wait: float = 2.0) -> int:
    """Check that nobody listens on the address yet; returns the port (port 0 resolved).

    The probe binds *without* SO_REUSEPORT, so it also fails when another
    server (even one using SO_REUSEPORT) holds the port: workers must never
    silently share a port with a stranger. It retries for ``wait`` seconds,
    for the workers of a just-killed instance that the kernel is still reaping.
    """
    family = _family(spec.interface)
    deadline = time.monotonic() + wait
    while True:
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((spec.interface or ("::" if family == socket.AF_INET6 else ""), spec.port))
            return int(sock.getsockname()[1])
        except OSError as e:
            if e.errno != errno.EADDRINUSE or time.monotonic() >= deadline:
                raise CannotListenError(spec.interface, spec.port, e) from None
        finally:
            sock.close()
        time.sleep(0.05)


class ReusePortService(Service):
    """Listens on ``spec`` with a socket of this process' own (SO_REUSEPORT)."""

    def __init__(self, spec: ListenSpec, factory: IProtocolFactory, reactor: Any) -> None:
        self.spec = spec
        self.factory = factory
        self.reactor = reactor
        self.port: IListeningPort | None = None

    def startService(self) -> None:
        self._listen()
        super().startService()

    def _listen(self) -> None:
        factory: IProtocolFactory = self.factory
        if self.spec.kind == "ssl":
            from twisted.protocols.tls import TLSMemoryBIOFactory

            factory = TLSMemoryBIOFactory(self.spec.tls_context, False, factory)
        sock = reuseport_socket(self.spec)
        try:
            self.port = self.reactor.adoptStreamPort(sock.fileno(), sock.family, factory)
        finally:
            sock.close()  # the reactor holds its own duplicate of the descriptor

    def stopService(self) -> Any:
        super().stopService()
        port, self.port = self.port, None
        return port.stopListening() if port is not None else None
