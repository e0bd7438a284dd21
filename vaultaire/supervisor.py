"""The supervisor: N S3 worker processes on one port, one ops site for all of them.

With ``--workers N`` (N > 1) the ``twistd vaultaire`` process serves no S3
itself. It does what must happen once per data directory — scrub staged
blobs, make the first keys, sweep garbage, expire uploads — then spawns N
``vaultaire.worker`` processes that each listen on the S3 port with their
own SO_REUSEPORT socket. It restarts a worker that dies (with a growing
delay if it keeps dying young), stops them all on SIGTERM, replaces them
one by one on SIGHUP, and serves /health, /version and /metrics, with the
workers' metrics summed (prometheus-client's multiprocess mode).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import sys
import time
from collections.abc import Iterator, Mapping
from typing import Any

from attrs import evolve
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, ProcessCollector, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead
from twisted.application.internet import TimerService
from twisted.internet.defer import Deferred, DeferredList, ensureDeferred, succeed
from twisted.internet.protocol import ProcessProtocol
from twisted.logger import Logger, LogLevel
from twisted.python.failure import Failure

from vaultaire import __version__
from vaultaire.announce import serving_line
from vaultaire.config import Settings
from vaultaire.console.service import console_listener
from vaultaire.deathsig import signal_child
from vaultaire.deployment import DeploymentJobs
from vaultaire.engine import Engine
from vaultaire.ops.events import EventLog
from vaultaire.ops.metrics import LifecycleMetrics, Metrics
from vaultaire.ops.site import ops_resource
from vaultaire.ops.workers import WorkerStatus, proc_stat, requests_served
from vaultaire.reuseport import ListenSpec, probe_free
from vaultaire.service import HEALTH_PROBE_SECONDS, HealthCache, periodic_work
from vaultaire.startup import StartGuard, open_data_directory, ops_listener, runtime_directory, start_engine
from vaultaire.worker import CONTROL_FD, settings_argument, tick_seconds

__all__ = ["Supervisor", "make_supervisor"]

log = Logger()

# A worker that dies within this many seconds of its start died young: wait longer each time.
STABLE_SECONDS = 10.0
FIRST_RESTART_DELAY = 0.5
MAX_RESTART_DELAY = 30.0
# How long a stopping worker may take to finish its requests before it is killed.
STOP_TIMEOUT = 15.0
# How long a worker killed for not ticking gets to act on SIGTERM before SIGKILL.
HUNG_KILL_GRACE = 5.0


class WorkerProcess(ProcessProtocol):
    """One spawned worker: relays its log lines and reports its state."""

    def __init__(self, index: int, on_exit: Any) -> None:
        self.index = index
        self.pid: int | None = None
        self.started = time.monotonic()
        self.ready: Deferred[None] = Deferred()
        self.exited: Deferred[int | None] = Deferred()
        self.fatal: str | None = None
        self.stopping = False
        # When its event loop last said anything on the control pipe (ready, then ticks).
        self.last_tick = time.monotonic()
        self.hung = False  # killed for not ticking: replaced, not stopped
        self._on_exit = on_exit
        self._buffers: dict[int, bytes] = {1: b"", 2: b"", CONTROL_FD: b""}

    def connectionMade(self) -> None:
        assert self.transport is not None  # makeConnection has just set it
        self.pid = self.transport.pid
        self.transport.closeStdin()

    def childDataReceived(self, fd: int, data: bytes) -> None:
        buffered = self._buffers.get(fd, b"") + data
        *lines, rest = buffered.split(b"\n")
        self._buffers[fd] = rest
        for line in lines:
            self._line(fd, line.decode("utf-8", "replace"))

    def _line(self, fd: int, line: str) -> None:
        if fd == CONTROL_FD:
            self.last_tick = time.monotonic()
            state, _, reason = line.partition(" ")
            if state == "ready" and not self.ready.called:
                self.ready.callback(None)
            elif state == "fatal":
                self.fatal = reason
            return
        if fd == 1:
            try:
                event = json.loads(line)
                level = LogLevel.levelWithName(event["level"])
                text = str(event["text"])
            except Exception:  # not one of ours: relay it as it is
                level, text = LogLevel.info, line
        else:  # raw stderr: the interpreter's own complaints
            level, text = LogLevel.warn, line
        if text:
            log.emit(level, "[worker {index}] {text}", index=self.index, text=text)

    def processEnded(self, reason: Failure) -> None:
        code = getattr(reason.value, "exitCode", None)
        self._on_exit(self, code, getattr(reason.value, "signal", None))
        if not self.ready.called:
            self.ready.errback(RuntimeError(self.fatal or f"worker {self.index} exited (code {code}) before it served"))
            self.ready.addErrback(lambda f: None)  # whoever waited has been told already
        self.exited.callback(code)

    def signal(self, name: str) -> None:
        signal_child(self.transport, name)


class WorkersCollector:
    """Per-worker CPU and memory, and the supervisor's restart count."""

    def __init__(self, supervisor: Supervisor) -> None:
        self._supervisor = supervisor

    def collect(self) -> Iterator[Metric]:
        sup = self._supervisor
        running = GaugeMetricFamily("vaultaire_workers_running", "Worker processes currently running.")
        running.add_metric([], len(sup.workers))
        yield running
        wanted = GaugeMetricFamily("vaultaire_workers_wanted", "Worker processes configured.")
        wanted.add_metric([], sup.count)
        yield wanted
        restarts = CounterMetricFamily("vaultaire_worker_restarts", "Workers restarted after they died.")
        restarts.add_metric([], sup.restarts)
        yield restarts
        hung = CounterMetricFamily(
            "vaultaire_worker_hung_kills", "Workers killed and replaced because their event loop stopped ticking."
        )
        hung.add_metric([], sup.hung_kills)
        yield hung
        cpu = CounterMetricFamily("vaultaire_worker_cpu_seconds", "CPU time of each worker.", labels=["worker"])
        rss = GaugeMetricFamily("vaultaire_worker_resident_memory_bytes", "RSS of each worker.", labels=["worker"])
        for worker in list(sup.workers.values()):
            stat = proc_stat(worker.pid) if worker.pid else None
            if stat is not None:
                cpu.add_metric([str(worker.index)], stat[0])
                rss.add_metric([str(worker.index)], stat[1])
        yield cpu
        yield rss


class AggregatedMetrics:
    """The ops site's /metrics: all workers' series summed, plus the supervisor's own."""

    def __init__(self, directory: str, supervisor: Supervisor) -> None:
        self.registry = CollectorRegistry()
        MultiProcessCollector(self.registry, path=directory)
        self.registry.register(supervisor.stored_metrics.stored)
        # Lifecycle rules run in the supervisor alone: its own counters.
        self.registry.register(supervisor.lifecycle_metrics.actions)
        self.registry.register(supervisor.lifecycle_metrics.runs)
        self.registry.register(supervisor.jobs.runs)
        ProcessCollector(registry=self.registry)
        self.registry.register(WorkersCollector(supervisor))

    def render(self) -> tuple[bytes, str]:
        return generate_latest(self.registry), CONTENT_TYPE_LATEST


class Supervisor(StartGuard):
    def __init__(
        self,
        settings: Settings,
        count: int,
        spec: ListenSpec,
        engine: Engine,
        environ: Mapping[str, str],
        reactor: Any,
    ) -> None:
        super().__init__()
        self.settings = settings
        self.count = count
        self.spec = spec
        self.engine = engine
        self.environ = environ
        self.reactor = reactor
        self.workers: dict[int, WorkerProcess] = {}
        self.restarts = 0
        self.restarts_of: dict[int, int] = {}  # by worker index, for the console's worker page
        self.hung_kills = 0
        self.ready: Deferred[None] | None = None
        self._delays: dict[int, float] = {}
        self._pending: dict[int, Any] = {}  # index -> scheduled restart
        self._running_workers = False
        self._reloading = False
        # The workers' metric files (prometheus-client multiprocess mode), memory-mapped: in the
        # runtime directory on tmpfs, never on the data disk (full disk: SIGBUS). Emptied at each start.
        self.metrics_dir = os.path.join(runtime_directory(settings, environ), "metrics")
        os.makedirs(self.metrics_dir, mode=0o700, exist_ok=True)
        self.health = HealthCache(engine)
        # The per-tenant stored gauges: read from the catalog here, once for all workers.
        self.stored_metrics = Metrics(tenant_label_limit=settings.metrics_tenant_limit)
        self.lifecycle_metrics = LifecycleMetrics(self.stored_metrics.registry)
        self.jobs = DeploymentJobs(engine.catalog, self.stored_metrics.registry, shared=bool(settings.catalog_url))
        # The supervisor's own events (lifecycle actions), in the workers' shared log.
        self.events = EventLog(
            os.path.join(os.path.abspath(settings.data), "events"),
            max_bytes=settings.events_max_bytes,
            rotate_daily=settings.events_rotate_daily,
        )
        self.started = time.time()

    # -- start

    def bind(self) -> None:
        # The S3 port is the workers' to bind: here it is only checked free (port 0 picked).
        port = probe_free(self.spec)
        super().bind()
        # Port 0 becomes the port the probe got, so every worker binds the same one.
        self.spec = self.spec.with_port(port)
        self.settings = evolve(
            self.settings, listen=self.spec.endpoint(self.settings.listen), data=os.path.abspath(self.settings.data)
        )

    def startService(self) -> None:
        # Counters of an earlier run's workers must not be summed into this run's.
        shutil.rmtree(self.metrics_dir, ignore_errors=True)
        os.makedirs(self.metrics_dir)
        self.events.start()
        super().startService()
        signal.signal(signal.SIGHUP, lambda *_: self.reactor.callFromThread(self.reload))
        self.ready = ensureDeferred(self._boot())

    async def _boot(self) -> None:
        # The engine's start scrubs staged blobs: no worker runs yet.
        failed = await start_engine(self.engine, self.settings.data, self.environ, bootstrap=True)
        if failed is not None:
            self.fail_start(failed)
            return
        await self.health.probe()
        self._running_workers = True
        spawned = [self._spawn(i).ready for i in range(1, self.count + 1)]
        results: list[tuple[bool, Any]] = await DeferredList(  # a Failure where not ok
            spawned, consumeErrors=True
        )
        failures = [r for ok, r in results if not ok]
        if failures:
            self.fail_start(failures[0].getErrorMessage())
            return
        self.health.ready = True
        # The jobs are named (periodic_work) before the leases an earlier run of this box left are
        # freed: forget_box_leases frees the named ones, so a restarted box sweeps at once.
        timed = periodic_work(
            self.settings,
            self.engine,
            self.stored_metrics,
            self.jobs,
            self.events,
            self.lifecycle_metrics,
            self.reactor,
        )
        await self.jobs.forget_box_leases()
        for period, work in (
            (tick_seconds(self.settings.heartbeat_timeout), self.check_heartbeats),
            (HEALTH_PROBE_SECONDS, self.health.probe),
            *timed,
        ):
            timer = TimerService(period, work)
            timer.clock = self.reactor
            timer.setServiceParent(self)
        log.info("{line}", line=serving_line(self.settings, os.path.abspath(self.settings.data), self.count))

    # -- workers

    def _environment(self) -> dict[str, str]:
        env = dict(os.environ)
        env["PROMETHEUS_MULTIPROC_DIR"] = self.metrics_dir
        return env

    def _start_process(self, index: int) -> WorkerProcess:
        worker = WorkerProcess(index, self._exited)
        args = [sys.executable, "-m", "vaultaire.worker", settings_argument(self.settings), str(os.getpid())]
        self.reactor.spawnProcess(
            worker,
            sys.executable,
            args,
            env=self._environment(),
            childFDs={0: "w", 1: "r", 2: "r", CONTROL_FD: "r"},
        )
        return worker

    def _spawn(self, index: int) -> WorkerProcess:
        self._pending.pop(index, None)
        worker = self.workers[index] = self._start_process(index)
        return worker

    def _exited(self, worker: WorkerProcess, code: int | None, signo: int | None) -> None:
        if worker.pid is not None:
            mark_process_dead(worker.pid, self.metrics_dir)  # drops its live gauges, keeps its counters
        if self.workers.get(worker.index) is not worker:
            return  # replaced by a reload, or a replacement that never served
        del self.workers[worker.index]
        if worker.stopping or not self._running_workers:
            return
        if not self.health.ready and not worker.ready.called:
            return  # the first start: _boot reports why and stops the daemon
        self._schedule_restart(worker, code, signo)

    def _schedule_restart(self, worker: WorkerProcess, code: int | None, signo: int | None) -> None:
        lived = time.monotonic() - worker.started
        delay = self._delays.get(worker.index, FIRST_RESTART_DELAY / 2)
        delay = min(MAX_RESTART_DELAY, delay * 2) if lived < STABLE_SECONDS else FIRST_RESTART_DELAY
        self._delays[worker.index] = delay
        how = f"signal {signo}" if signo else f"code {code}"
        log.warn(
            "worker {index} (pid {pid}) exited with {how} after {lived:.1f}s; restarting it in {delay:.1f}s",
            index=worker.index,
            pid=worker.pid,
            how=how,
            lived=lived,
            delay=delay,
        )
        self.restarts += 1
        self.restarts_of[worker.index] = self.restarts_of.get(worker.index, 0) + 1
        self._pending[worker.index] = self.reactor.callLater(delay, self._spawn, worker.index)

    def check_heartbeats(self) -> None:
        """Kill (SIGTERM, then SIGKILL) and so replace a serving worker whose event loop stopped ticking.

        A blocked loop answers no request and may not even act on SIGTERM (its
        handler only asks the loop to stop; a stopped process keeps it pending):
        SIGKILL follows after HUNG_KILL_GRACE seconds. Its exit restarts it.
        """
        now = time.monotonic()
        for worker in list(self.workers.values()):
            if worker.stopping or worker.hung or not worker.ready.called:
                continue
            silent = now - worker.last_tick
            if silent < self.settings.heartbeat_timeout:
                continue
            worker.hung = True
            self.hung_kills += 1
            log.error(
                "worker {index} (pid {pid}) has not answered for {silent:.0f}s: its event loop is blocked;"
                " killing it to replace it",
                index=worker.index,
                pid=worker.pid,
                silent=silent,
            )
            worker.signal("TERM")
            kill = self.reactor.callLater(HUNG_KILL_GRACE, worker.signal, "KILL")

            def exited(code: int | None, kill: Any = kill) -> int | None:
                if kill.active():
                    kill.cancel()
                return code

            worker.exited.addCallback(exited)

    def reload(self) -> Deferred[None]:
        """SIGHUP: replace the workers one at a time, each only after its successor serves."""
        if self._reloading or not self._running_workers:
            return succeed(None)
        self._reloading = True

        async def roll() -> None:
            try:
                for index, old in sorted(self.workers.items()):
                    if not self._running_workers:
                        return
                    old.stopping = True
                    new = self._start_process(index)
                    try:
                        await new.ready
                    except Exception as e:
                        old.stopping = False
                        log.error("reload stopped: a new worker {index} failed: {e}", index=index, e=e)
                        return
                    self.workers[index] = new
                    log.info(
                        "worker {index} (pid {pid}) replaced by pid {new}; it finishes its requests and stops",
                        index=index,
                        pid=old.pid,
                        new=new.pid,
                    )
                    old.signal("TERM")
                    await old.exited
                log.info("reloaded {n} workers", n=len(self.workers))
            finally:
                self._reloading = False

        return ensureDeferred(roll())

    def worker_statuses(self) -> list[WorkerStatus]:
        """Each worker slot as it is now, for the console's operator pages."""
        now = time.monotonic()
        out = []
        for index in range(1, self.count + 1):
            worker = self.workers.get(index)
            restarts = self.restarts_of.get(index, 0)
            if worker is None:
                pending = self._pending.get(index)
                waiting = (
                    pending.getTime() - self.reactor.seconds() if pending is not None and pending.active() else None
                )
                state = "restarting" if waiting is not None else "down"
                out.append(WorkerStatus(index, None, state, restarts, None, restart_in=waiting))
                continue
            if worker.hung:
                state = "killed (event loop blocked)"
            elif worker.stopping:
                state = "stopping"
            elif worker.ready.called:
                state = "serving"
            else:
                state = "starting"
            stat = proc_stat(worker.pid) if worker.pid else None
            out.append(
                WorkerStatus(
                    index,
                    worker.pid,
                    state,
                    restarts,
                    now - worker.started,
                    last_heartbeat=now - worker.last_tick,
                    requests=self._requests_of(worker.pid),
                    cpu_seconds=stat[0] if stat else None,
                    resident_bytes=stat[1] if stat else None,
                )
            )
        return out

    def _requests_of(self, pid: int | None) -> int | None:
        """The requests one worker finished: its own counter file of the metrics directory."""
        path = os.path.join(self.metrics_dir, f"counter_{pid}.db")
        if pid is None or not os.path.exists(path):
            return None  # nothing counted yet (the file appears with its first request)
        try:
            return requests_served(MultiProcessCollector.merge([path]))
        except Exception:
            return None  # a file being written for the first time: next time

    def health_report(self) -> Mapping[str, object]:
        """The ops /health: the drivers as probed here, and how many workers serve."""
        doc = dict(self.health())
        if self.health.ready:
            doc["workers"] = {"running": len(self.workers), "wanted": self.count}
            if not self.workers:
                doc["status"] = "failing"  # nobody serves S3 right now
        return doc

    # -- stop

    def stopService(self) -> Deferred[None]:
        self._running_workers = False
        for call in self._pending.values():
            if call.active():
                call.cancel()
        self._pending.clear()
        d = super().stopService()

        async def after() -> None:
            await d
            await self._stop_workers()
            await self.jobs.idle()  # a sweep or a lifecycle run in progress ends first
            await self.jobs.release_duties()
            await self.engine.stop()
            self.events.stop()
            self.abandon()

        return ensureDeferred(after())

    def abandon(self) -> None:
        """Remove the metric files, and the runtime directory if it is our default one."""
        shutil.rmtree(self.metrics_dir, ignore_errors=True)
        runtime = os.path.dirname(self.metrics_dir)
        if os.path.basename(runtime).startswith("vaultaire-"):  # the default one in /dev/shm: ours
            try:
                os.rmdir(runtime)
            except OSError:
                pass  # not empty: something else lives there

    async def _stop_workers(self) -> None:
        workers = list(self.workers.values())
        for worker in workers:
            worker.stopping = True
            worker.signal("TERM")

        def kill_all() -> None:
            for worker in workers:
                worker.signal("KILL")

        kill = self.reactor.callLater(STOP_TIMEOUT, kill_all)
        await DeferredList([w.exited for w in workers])
        if kill.active():
            kill.cancel()


def make_supervisor(
    settings: Settings,
    count: int,
    spec: ListenSpec,
    reactor: Any = None,
    environ: Mapping[str, str] | None = None,
) -> Supervisor:
    if reactor is None:
        from twisted.internet import reactor as default_reactor

        reactor = default_reactor
    # The engine's start scrubs staged blobs, and starts the one rclone per driver the
    # workers share: before any worker runs.
    engine = open_data_directory(settings, reactor, scrub_staging=True, rclone_role="publish")
    top = Supervisor(settings, count, spec, engine, environ if environ is not None else os.environ, reactor)
    metrics = AggregatedMetrics(top.metrics_dir, top)
    ops = ops_resource(metrics, version=__version__, started=top.started, health=top.health_report)
    ops_listener(settings, ops, reactor).setServiceParent(top)
    # The web console, in the supervisor: its requests go to the workers' port like any client's;
    # its operator's charts sample the same sums as /metrics.
    console = console_listener(
        settings,
        engine,
        reactor,
        lambda: None,
        lambda: top.settings.listen,
        metrics=metrics.registry,
        workers=top.worker_statuses,
    )
    if console is not None:
        console.setServiceParent(top)
    return top
