"""One S3 worker process, spawned by the supervisor: ``python -m vaultaire.worker``.

Arguments: the settings as JSON and the supervisor's pid. The worker serves
S3 on its own SO_REUSEPORT socket and talks back to the supervisor on two
pipes: log events as JSON lines on stdout, and its state on descriptor 3
(``ready`` once it serves, ``fatal <reason>`` when it cannot start, then
``tick`` from its event loop every second or so: a worker whose ticks stop
has a blocked loop, and the supervisor replaces it).
"""

from __future__ import annotations

import json
import os
import signal
import sys
from typing import IO, Any, cast

from attrs import asdict, evolve
from twisted.internet.base import ReactorBase
from twisted.internet.task import LoopingCall
from twisted.logger import (
    FilteringLogObserver,
    ILogObserver,
    LogLevel,
    LogLevelFilterPredicate,
    formatEvent,
    globalLogBeginner,
)
from zope.interface import implementer

from vaultaire.config import Settings, build
from vaultaire.deathsig import die_with_parent

CONTROL_FD = 3


def tick_seconds(heartbeat_timeout: float) -> float:
    """How often a worker ticks: often enough that a few lost ticks never look like a hang."""
    return min(1.0, heartbeat_timeout / 4)


def settings_argument(settings: Settings) -> str:
    # A worker's command line is readable by every local user (ps): the console's operator
    # credential, which only the supervisor's console uses, stays out of it.
    return json.dumps(asdict(evolve(settings, console_admin_key="", console_admin_secret="")))


def settings_from_argument(text: str) -> Settings:
    # The same normalising (lists to tuples) and checks as settings from a file.
    return build(json.loads(text), {})


@implementer(ILogObserver)
class JSONLinesObserver:
    """Log events as one JSON line each, for the supervisor to re-log at their level."""

    def __init__(self, out: IO[str]) -> None:
        self._out = out

    def __call__(self, event: dict[str, Any]) -> None:
        text = formatEvent(event)
        failure = event.get("log_failure")
        if failure is not None:
            text = f"{text}\n{failure.getTraceback()}"
        level = event.get("log_level", LogLevel.info)
        try:
            self._out.write(json.dumps({"level": level.name, "text": text}) + "\n")
            self._out.flush()
        except (OSError, ValueError):
            pass  # the supervisor is gone; logging must never take the worker down


class Control:
    """The state pipe to the supervisor."""

    def __init__(self, fd: int) -> None:
        self._fd = fd

    def __call__(self, state: str, reason: str) -> None:
        line = f"{state} {reason}".strip().replace("\n", " ") + "\n"
        try:
            os.write(self._fd, line.encode("utf-8", "replace"))
        except OSError:
            pass


def main(argv: list[str]) -> None:
    settings = settings_from_argument(argv[0])
    die_with_parent(int(argv[1]))
    predicate = LogLevelFilterPredicate(defaultLogLevel=LogLevel.levelWithName(settings.log_level))
    globalLogBeginner.beginLoggingTo(
        [FilteringLogObserver(JSONLinesObserver(sys.stdout), [predicate])], redirectStandardIO=False
    )
    # SIGHUP and SIGINT are the supervisor's to act on: Ctrl-C reaches the whole process
    # group, and the supervisor then stops each worker with one SIGTERM.
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)

    from twisted.internet import reactor as installed

    # The installed reactor is a ReactorBase: its declared type (IReactorCore and friends)
    # lacks callFromThread and run's installSignalHandlers, which every real reactor has.
    reactor = cast(ReactorBase, installed)

    from vaultaire.service import make_service

    # Never block the event loop on the pipe (a supervisor that stopped reading): drop a line instead.
    try:
        os.set_blocking(CONTROL_FD, False)
    except OSError:
        pass  # not spawned by a supervisor (no pipe): Control drops what it cannot write
    control = Control(CONTROL_FD)
    try:
        service = make_service(settings, reactor, notify=control)
        service.privilegedStartService()
    except SystemExit:
        raise  # the reason went to the supervisor already
    except Exception as e:
        control("fatal", f"the worker failed to start: {e}")
        raise SystemExit(1) from None
    stopping: list[bool] = []

    def stop(signo: int, frame: Any) -> None:
        if not stopping:  # a second SIGTERM must not stop a stopping reactor again
            stopping.append(True)
            reactor.callFromThread(reactor.stop)

    signal.signal(signal.SIGTERM, stop)
    # The heartbeat: ticks from the event loop itself, so a blocked loop stops them.
    heartbeat = LoopingCall(control, "tick", "")
    heartbeat.clock = reactor
    service.ready_hooks.append(lambda: heartbeat.start(tick_seconds(settings.heartbeat_timeout), now=False))
    reactor.callWhenRunning(service.startService)
    reactor.addSystemEventTrigger("before", "shutdown", service.stopService)
    # Our own SIGTERM handler (above) instead of the reactor's, which would also take SIGINT.
    reactor.run(installSignalHandlers=False)


if __name__ == "__main__":
    main(sys.argv[1:])
