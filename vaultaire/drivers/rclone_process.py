"""One supervised ``rclone serve s3`` process: started, watched, restarted, stopped.

The process listens on a private loopback port with credentials generated at
each start of the daemon. The secret reaches rclone in its environment
(``RCLONE_AUTH_KEY``), never on its command line, which ``ps`` shows to every
user. It runs under ``python -m vaultaire.deathsig``, which ties it to this
process (PR_SET_PDEATHSIG: a kill -9 of the daemon kills it too) and gives it
a session of its own (a Ctrl-C meant for the daemon does not stop it first).

If it dies it is restarted on the same port, after a delay that grows while
it keeps dying young; requests meanwhile find the port closed and get a
DriverUnavailable (503 SlowDown), never a hang. A process that still runs but
stops answering is killed, and so restarted, by ``watch``. Its log lines
(``--use-json-log``) go to Vaultaire's log at their own levels.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

from attrs import frozen
from twisted.internet.defer import Deferred, ensureDeferred
from twisted.internet.error import ConnectError
from twisted.internet.protocol import Factory, ProcessProtocol, Protocol
from twisted.internet.task import LoopingCall
from twisted.logger import Logger, LogLevel
from twisted.python.failure import Failure

from vaultaire.deathsig import signal_child
from vaultaire.errors import DriverError

log = Logger()

STABLE_SECONDS = 10.0  # a process that dies sooner than this after its start died young
FIRST_RESTART_DELAY = 0.5
MAX_RESTART_DELAY = 30.0
READY_SECONDS = 30.0  # how long a new process may take to listen
STOP_SECONDS = 5.0  # how long a stopping process may take before it is killed
WATCH_SECONDS = 3.0
WATCH_FAILURES = 3  # probes in a row that find a running process not answering: kill it

# Messages rclone logs as errors that are not: its VFS removes a directory that became empty
# after a delete, and says so at ERROR when a sibling blob has been written there meanwhile.
_BENIGN = ("Dir.Remove not empty",)

# rclone's JSON log levels -> ours. NOTICE is rclone's default level for ordinary news.
_LEVELS = {
    "critical": LogLevel.critical,
    "error": LogLevel.error,
    "warning": LogLevel.warn,
    "notice": LogLevel.info,
    "info": LogLevel.info,
    "debug": LogLevel.debug,
}


@frozen
class ServeSpec:
    """What to run: the binary, rclone's config file, the remote root served, extra flags."""

    binary: str
    config_file: str
    root: str
    args: tuple[str, ...] = ()


def free_loopback_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class _RcloneProtocol(ProcessProtocol):
    """One run of the process: relays its log lines, remembers the last, reports its end."""

    def __init__(self, name: str) -> None:
        self._name = name
        self.pid: int | None = None
        self.started = time.monotonic()
        self.last_message = ""
        self.ended: Deferred[tuple[int | None, int | None]] = Deferred()
        self._buffers: dict[int, bytes] = {}

    def connectionMade(self) -> None:
        assert self.transport is not None  # makeConnection has just set it
        self.pid = self.transport.pid
        self.transport.closeStdin()

    def childDataReceived(self, fd: int, data: bytes) -> None:
        *lines, rest = (self._buffers.get(fd, b"") + data).split(b"\n")
        self._buffers[fd] = rest[-65536:]  # a line without end must not grow without bound
        for line in lines:
            self._line(line.decode("utf-8", "replace").strip())

    def _line(self, line: str) -> None:
        if not line:
            return
        try:
            event = json.loads(line)
            level = _LEVELS.get(str(event.get("level", "")).lower(), LogLevel.warn)
            text = str(event["msg"])
        except (ValueError, KeyError, AttributeError, TypeError):
            level, text = LogLevel.warn, line  # not JSON: Go's own complaints (a panic, say)
        if text in _BENIGN:
            level = LogLevel.debug
        self.last_message = text
        log.emit(level, "[rclone {name}] {text}", name=self._name, text=text)

    def processEnded(self, reason: Failure) -> None:
        self.ended.callback((getattr(reason.value, "exitCode", None), getattr(reason.value, "signal", None)))

    def signal(self, name: str) -> None:
        signal_child(self.transport, name)


class RcloneServe:
    """``rclone serve s3`` for one driver, on 127.0.0.1:``port`` with one generated key pair."""

    def __init__(
        self,
        name: str,
        spec: ServeSpec,
        access_key: str,
        secret_key: str,
        reactor: Any,
        on_port: Callable[[int], None] | None = None,
    ) -> None:
        self.name = name
        self.spec = spec
        self.port = 0
        self.restarts = 0
        self._access = access_key
        self._secret = secret_key
        self._reactor = reactor
        # Told of a new port: the one it had was taken while the process was down.
        self._on_port = on_port
        self._proc: _RcloneProtocol | None = None
        self._ready = False
        self._stopping = False
        self._delay = FIRST_RESTART_DELAY / 2
        self._pending: Any = None
        self._watch: LoopingCall | None = None
        self._failures = 0

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None and not self._proc.ended.called else None

    @property
    def serving(self) -> bool:
        return self._ready and self.pid is not None

    def status(self) -> dict[str, object]:
        return {"pid": self.pid, "port": self.port, "serving": self.serving, "restarts": self.restarts}

    # -- start

    def _command(self) -> list[str]:
        return [
            sys.executable,
            "-m",
            "vaultaire.deathsig",
            str(os.getpid()),
            self.spec.binary,
            "serve",
            "s3",
            "--addr",
            f"127.0.0.1:{self.port}",
            "--use-json-log",
            *self.spec.args,
            self.spec.root,
        ]

    def _environment(self) -> dict[str, str]:
        env = dict(os.environ)
        if self.spec.config_file:
            env["RCLONE_CONFIG"] = self.spec.config_file
        # rclone reads list flags from the environment as CSV: the pair is quoted as one field.
        env["RCLONE_AUTH_KEY"] = f'"{self._access},{self._secret}"'
        return env

    def _spawn(self) -> _RcloneProtocol:
        self._pending = None
        self._ready = False
        proc = _RcloneProtocol(self.name)
        self._proc = proc
        command = self._command()
        self._reactor.spawnProcess(
            proc, command[0], command, env=self._environment(), childFDs={0: "w", 1: "r", 2: "r"}
        )
        proc.ended.addCallback(lambda result: self._ended(proc, *result))
        return proc

    async def start(self) -> None:
        """Start the process and wait until it listens; DriverError saying why it cannot."""
        for _ in range(3):
            self.port = free_loopback_port()
            proc = self._spawn()
            try:
                await self._wait_listening(proc)
                self._ready = True
                return
            except _PortTaken:
                continue  # someone took the free port between our probe and rclone's bind
        raise DriverError(f"driver {self.name!r}: rclone could not get a loopback port")

    async def _wait_listening(self, proc: _RcloneProtocol) -> None:
        deadline = time.monotonic() + READY_SECONDS
        while True:
            if proc.ended.called:
                await proc.ended  # let _ended see it first
                message = proc.last_message or "no message"
                if "address already in use" in message:
                    raise _PortTaken()
                raise DriverError(f"driver {self.name!r}: rclone exited at start: {message}")
            if await self._listening():
                return
            if time.monotonic() > deadline:
                proc.signal("KILL")
                # Not "unavailable": the engine would start without it, and nothing would retry.
                raise DriverError(f"driver {self.name!r}: rclone did not listen within {READY_SECONDS:.0f}s")
            await _sleep(self._reactor, 0.05)

    async def _listening(self) -> bool:
        from twisted.internet.endpoints import TCP4ClientEndpoint

        endpoint = TCP4ClientEndpoint(self._reactor, "127.0.0.1", self.port, timeout=2)
        factory = Factory.forProtocol(Protocol)
        factory.noisy = False  # no "Starting factory" line in the log per probe
        try:
            protocol = await endpoint.connect(factory)
        except ConnectError:
            return False
        assert isinstance(protocol, Protocol) and protocol.transport is not None  # forProtocol(Protocol) built it
        protocol.transport.loseConnection()
        return True

    # -- life

    def _ended(self, proc: _RcloneProtocol, code: int | None, signo: int | None) -> None:
        if proc is not self._proc or self._stopping:
            return
        if not self._ready and self.restarts == 0:
            return  # the first start: start() reports why
        self._ready = False
        lived = time.monotonic() - proc.started
        self._delay = min(MAX_RESTART_DELAY, self._delay * 2) if lived < STABLE_SECONDS else FIRST_RESTART_DELAY
        how = f"signal {signo}" if signo else f"code {code}"
        log.error(
            "rclone for driver {name} (pid {pid}) exited with {how} after {lived:.1f}s ({message});"
            " restarting it in {delay:.1f}s",
            name=self.name,
            pid=proc.pid,
            how=how,
            lived=lived,
            message=proc.last_message or "no message",
            delay=self._delay,
        )
        self.restarts += 1
        self._pending = self._reactor.callLater(self._delay, self._restart)

    def _restart(self) -> None:
        async def restart() -> None:
            proc = self._spawn()
            try:
                await self._wait_listening(proc)
            except _PortTaken:
                # Another program took our port while rclone was down: move, and say where.
                self.port = free_loopback_port()
                if self._on_port is not None:
                    self._on_port(self.port)
                return  # _ended has scheduled the next try, which uses the new port
            except DriverError:
                return  # it died again: _ended has scheduled the next try
            if proc is self._proc and not self._stopping:
                self._ready = True
                self._failures = 0
                log.info("rclone for driver {name} is serving again (pid {pid})", name=self.name, pid=proc.pid)

        ensureDeferred(restart()).addErrback(lambda f: log.failure("restarting rclone failed", f))

    def watch(self, probe: Callable[[], Awaitable[bool]]) -> None:
        """Every few seconds ``probe`` asks the process a question; one that runs but does
        not answer several times in a row is hung, and is killed (then restarted)."""

        async def check() -> None:
            if not self.serving:
                self._failures = 0
                return
            proc = self._proc
            if await probe():
                self._failures = 0
                return
            self._failures += 1
            if self._failures >= WATCH_FAILURES and proc is self._proc and self.serving:
                log.error(
                    "rclone for driver {name} (pid {pid}) has not answered {n} health checks: killing it",
                    name=self.name,
                    pid=self.pid,
                    n=self._failures,
                )
                self._failures = 0
                assert proc is not None
                proc.signal("KILL")

        self._watch = LoopingCall(lambda: ensureDeferred(check()).addErrback(lambda f: log.failure("rclone", f)))
        self._watch.clock = self._reactor
        self._watch.start(WATCH_SECONDS, now=False)

    # -- stop

    async def stop(self) -> None:
        self._stopping = True
        if self._watch is not None and self._watch.running:
            self._watch.stop()
        if self._pending is not None and self._pending.active():
            self._pending.cancel()
        proc = self._proc
        if proc is None or proc.ended.called:
            return
        proc.signal("TERM")
        kill = self._reactor.callLater(STOP_SECONDS, proc.signal, "KILL")
        await proc.ended
        if kill.active():
            kill.cancel()


class _PortTaken(Exception):
    pass


def _sleep(reactor: Any, seconds: float) -> Deferred[None]:
    d: Deferred[None] = Deferred()
    reactor.callLater(seconds, d.callback, None)
    return d
