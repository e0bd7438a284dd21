"""The supervisor's restart policy, in process with a fake clock (no worker is spawned)."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from twisted.internet.testing import MemoryReactorClock

from vaultaire.config import Settings
from vaultaire.reuseport import ListenSpec, parse_listen
from vaultaire.supervisor import HUNG_KILL_GRACE, MAX_RESTART_DELAY, STABLE_SECONDS, Supervisor, WorkerProcess


@pytest.fixture
def supervisor(tmp_path: Path) -> Iterator[Supervisor]:
    spec = parse_listen("tcp:8080:interface=127.0.0.1")
    assert spec is not None
    # No engine runs here: only its catalog is named (for the once-per-deployment leases), never used.
    engine = SimpleNamespace(catalog=None)
    sup = Supervisor(Settings(data=str(tmp_path)), 2, spec, engine=engine, environ={}, reactor=MemoryReactorClock())  # type: ignore[arg-type]
    sup._running_workers = True
    sup.health.ready = True
    yield sup
    sup.abandon()
    assert not os.path.exists(os.path.dirname(sup.metrics_dir))  # its runtime directory in /dev/shm is gone


def died(sup: Supervisor, index: int, lived: float) -> float:
    """A worker of ``index`` that served, then died after ``lived`` seconds: the restart delay chosen."""
    worker = WorkerProcess(index, sup._exited)
    worker.started = time.monotonic() - lived
    worker.ready.callback(None)
    sup.workers[index] = worker
    reactor: Any = sup.reactor
    before = set(reactor.getDelayedCalls())
    worker.processEnded(_exit(1))
    (call,) = set(reactor.getDelayedCalls()) - before
    assert index not in sup.workers
    call.cancel()  # it would spawn a real process
    return float(call.getTime() - reactor.seconds())


def _exit(code: int) -> Any:
    from twisted.internet.error import ProcessTerminated
    from twisted.python.failure import Failure

    return Failure(ProcessTerminated(exitCode=code))


def test_a_worker_dying_young_again_and_again_waits_longer_each_time(supervisor: Supervisor) -> None:
    delays = [died(supervisor, 1, lived=0.2) for _ in range(10)]
    assert delays[:4] == [0.5, 1.0, 2.0, 4.0]
    assert delays[-1] == MAX_RESTART_DELAY and max(delays) == MAX_RESTART_DELAY
    assert supervisor.restarts == 10


def test_a_worker_that_ran_a_while_is_restarted_at_once(supervisor: Supervisor) -> None:
    for _ in range(5):
        died(supervisor, 2, lived=0.2)
    assert died(supervisor, 2, lived=STABLE_SECONDS + 1) == 0.5


def test_a_stopping_worker_is_not_restarted(supervisor: Supervisor) -> None:
    worker = WorkerProcess(1, supervisor._exited)
    worker.ready.callback(None)
    worker.stopping = True
    supervisor.workers[1] = worker
    worker.processEnded(_exit(0))
    assert supervisor.reactor.getDelayedCalls() == []  # type: ignore[attr-defined]
    assert supervisor.restarts == 0


def test_listen_spec_keeps_the_endpoint_options_with_a_resolved_port() -> None:
    spec = parse_listen("tcp:0:interface=127.0.0.1:backlog=128")
    assert spec == ListenSpec("tcp", "127.0.0.1", 0, 128)
    assert spec.with_port(4321).endpoint("tcp:0:interface=127.0.0.1:backlog=128") == (
        "tcp:4321:interface=127.0.0.1:backlog=128"
    )
    assert parse_listen("systemd:domain=INET:index=0") is None
    assert parse_listen("unix:/tmp/s3.sock") is None


class Signalled(WorkerProcess):
    def __init__(self, index: int, sup: Supervisor) -> None:
        super().__init__(index, sup._exited)
        self.signals: list[str] = []

    def signal(self, name: str) -> None:
        self.signals.append(name)


def test_a_worker_that_stops_ticking_gets_sigterm_then_sigkill_and_is_restarted(supervisor: Supervisor) -> None:
    timeout = supervisor.settings.heartbeat_timeout
    quiet, ticking = Signalled(1, supervisor), Signalled(2, supervisor)
    for worker in (quiet, ticking):
        worker.ready.callback(None)
        supervisor.workers[worker.index] = worker
    quiet.last_tick = time.monotonic() - timeout - 1
    ticking.childDataReceived(3, b"tick\n")
    supervisor.check_heartbeats()
    assert (quiet.signals, ticking.signals, supervisor.hung_kills) == (["TERM"], [], 1)
    supervisor.check_heartbeats()  # once is enough: no second SIGTERM while it dies
    assert quiet.signals == ["TERM"]
    reactor: Any = supervisor.reactor
    reactor.advance(HUNG_KILL_GRACE)  # a blocked (or stopped) loop never acts on SIGTERM
    assert quiet.signals == ["TERM", "KILL"]
    before = set(reactor.getDelayedCalls())
    quiet.processEnded(_exit(-9))
    (restart,) = set(reactor.getDelayedCalls()) - before
    restart.cancel()  # it would spawn a real process
    assert supervisor.restarts == 1 and 1 not in supervisor.workers


def test_each_worker_slot_as_the_console_shows_it(supervisor: Supervisor) -> None:
    """Serving, starting, killed for not ticking, and restarting after a death (with the
    seconds until its new process): pids, uptime and restarts as the supervisor knows them."""
    serving = WorkerProcess(1, supervisor._exited)
    serving.pid = os.getpid()  # a live process, so /proc has its CPU and memory
    serving.started = time.monotonic() - 30
    serving.ready.callback(None)
    supervisor.workers[1] = serving
    starting = WorkerProcess(2, supervisor._exited)
    supervisor.workers[2] = starting
    one, two = supervisor.worker_statuses()
    assert (one.index, one.pid, one.state, one.restarts) == (1, os.getpid(), "serving", 0)
    assert one.uptime is not None and 30 <= one.uptime < 60
    assert one.cpu_seconds is not None and one.resident_bytes is not None and one.resident_bytes > 0
    assert one.requests is None  # no metric file of its own yet: nothing counted, not 0 invented
    assert (two.state, two.pid) == ("starting", None)
    starting.ready.callback(None)
    starting.hung = True
    assert supervisor.worker_statuses()[1].state == "killed (event loop blocked)"
    # Worker 1 dies young: its slot waits for its restart, which is counted against it alone.
    reactor: Any = supervisor.reactor
    before = set(reactor.getDelayedCalls())
    serving.processEnded(_exit(1))
    (restart,) = set(reactor.getDelayedCalls()) - before
    one, two = supervisor.worker_statuses()
    assert (one.state, one.pid, one.restarts, one.restart_in) == ("restarting", None, 1, 0.5)
    assert two.restarts == 0
    reactor.advance(0.2)
    assert supervisor.worker_statuses()[0].restart_in == pytest.approx(0.3)
    restart.cancel()  # it would spawn a real process
    assert supervisor.worker_statuses()[0].state == "down"
