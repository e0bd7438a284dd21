"""Builds the service tree from settings: S3 site, ops site, engine and timers."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping
from typing import Any

from twisted.application import strports
from twisted.application.internet import TimerService
from twisted.internet.defer import Deferred, ensureDeferred
from twisted.internet.error import CannotListenError
from twisted.logger import Logger

from vaultaire import __version__
from vaultaire.announce import serving_line
from vaultaire.api import cors
from vaultaire.api.app import S3Api
from vaultaire.api.auth import Authenticator
from vaultaire.api.deadlines import ConnectionLimits
from vaultaire.api.site import S3Site
from vaultaire.catalog.sqlite import SQLiteCatalog
from vaultaire.config import ConfigError, Settings
from vaultaire.console.service import bound_port, console_listener
from vaultaire.deployment import DeploymentJobs
from vaultaire.draining import drain
from vaultaire.drivers.interface import is_reconciling
from vaultaire.engine import Engine
from vaultaire.errors import CatalogUnavailable
from vaultaire.lifecycle.runner import LifecycleRunner
from vaultaire.model import StoredTotals, Tenant
from vaultaire.ops.events import EventLog
from vaultaire.ops.failures import log_periodic_failure
from vaultaire.ops.heap import set_aside_startup_heap
from vaultaire.ops.metering import Meter
from vaultaire.ops.metrics import LifecycleMetrics, Metrics
from vaultaire.ops.site import ops_resource
from vaultaire.ops.workers import WorkerStatus, proc_stat, requests_served
from vaultaire.reuseport import ReusePortService, listen_backlog, parse_listen, with_backlog
from vaultaire.startup import Notify, StartGuard, cannot_listen, open_data_directory, ops_listener, start_engine

log = Logger()

HEALTH_PROBE_SECONDS = 10.0
UPLOAD_EXPIRY_SECONDS = 3600.0  # how often unfinished uploads are checked for expiry
DRAIN_SECONDS = 10.0  # how long a stopping process waits for its requests in flight


class HealthCache:
    """Driver health probed on a timer, so a health request never waits on a disk."""

    def __init__(
        self, engine: Engine, identity: Mapping[str, object] | None = None, metrics: Metrics | None = None
    ) -> None:
        self._engine = engine
        # Fixed fields added to every answer, e.g. which worker process answered.
        self._identity = dict(identity or {})
        self._metrics = metrics
        self.last: dict[str, object] = {"status": "starting"}
        # Until the engine has started and the first keys exist, the daemon is not ready.
        self.ready = False

    def probe(self) -> Deferred[None]:
        async def run() -> None:
            self.last = {**await self._engine.health(), **self._identity}
            drivers = self.last.get("drivers")
            if self._metrics is not None and isinstance(drivers, Mapping):
                self._metrics.observe_drivers(drivers)

        return ensureDeferred(run()).addErrback(lambda f: log.failure("health probe failed", f))

    def __call__(self) -> Mapping[str, object]:
        return self.last if self.ready else {"status": "starting"}


class VaultaireService(StartGuard):
    """Binds the ports first (clear error if taken), then starts the engine."""

    def __init__(
        self,
        settings: Settings,
        engine: Engine,
        events: EventLog,
        environ: Mapping[str, str],
        reactor: Any,
        health: HealthCache,
        meter: Meter,
        notify: Notify | None = None,
    ) -> None:
        super().__init__()
        # Set in a worker process: tells the supervisor ("ready", "") or ("fatal", why).
        self.notify = notify
        # A worker's S3 listener, started only once the engine is up: with SO_REUSEPORT
        # a listening worker takes its share of connections at once.
        self.late_listener: ReusePortService | None = None
        # A worker's wait for its requests and connections to finish, once its port is closed.
        self.drain: Callable[[], Deferred[None]] | None = None
        self.settings = settings
        self.engine = engine
        self.events = events
        self.environ = environ
        self.reactor = reactor
        self.health = health
        self.meter = meter
        self.ready: Deferred[None] | None = None
        # The sweeps, started once the engine (and so every driver) has started: a sweep
        # before that would find drivers that cannot work yet (an rclone not yet running).
        self.periodic: list[TimerService] = []
        # Called once the service serves (a worker starts its heartbeat then).
        self.ready_hooks: list[Callable[[], object]] = []
        # The leases of once-per-deployment work (none in a worker: its supervisor has them).
        self.jobs: DeploymentJobs | None = None

    def startService(self) -> None:
        self.events.start()
        super().startService()
        self.ready = ensureDeferred(self._boot())

    async def _boot(self) -> None:
        # A worker's supervisor has made the first keys before spawning it.
        failed = await start_engine(self.engine, self.settings.data, self.environ, bootstrap=self.notify is None)
        if failed is not None:
            self.fail_start(failed)
            return
        self.health.ready = True
        if self.jobs is not None:
            await self.jobs.forget_box_leases()
        for timer in self.periodic:
            timer.setServiceParent(self)
        await self.health.probe()
        set_aside_startup_heap()  # all that starting built is in place now
        if self.notify is not None:
            if self.late_listener is not None:
                try:
                    self.late_listener.startService()
                except CannotListenError as e:
                    self.fail_start(cannot_listen(e))
                    return
            self.notify("ready", "")
            for hook in self.ready_hooks:
                hook()
            return
        log.info("{line}", line=serving_line(self.settings, os.path.abspath(self.settings.data)))

    def stopService(self) -> Deferred[None]:
        listener, self.late_listener = self.late_listener, None
        stopped = listener.stopService() if listener is not None and listener.running else None
        d = super().stopService()

        async def after() -> None:
            if stopped is not None:
                await stopped
            if self.drain is not None:
                await self.drain()
            await d
            await self.meter.flush()  # the last seconds of traffic, before the catalog closes
            if self.jobs is not None:
                await self.jobs.idle()  # a sweep or a lifecycle run in progress ends first
                await self.jobs.release_duties()
            await self.engine.stop()
            self.events.stop()

        return ensureDeferred(after())


def oldest_names(tenants: list[Tenant]) -> list[str]:
    return [t.name for t in sorted(tenants, key=lambda t: (t.created, t.name))]


def periodic_work(
    settings: Settings,
    engine: Engine,
    metrics: Metrics,
    jobs: DeploymentJobs,
    events: EventLog | None = None,
    lifecycle_metrics: LifecycleMetrics | None = None,
    reactor: Any = None,
) -> list[tuple[float, Callable[[], Deferred[Any]]]]:
    """What runs on a timer in the daemon, or in the supervisor of workers: per host (headroom,
    failover reconciliation), and once per deployment through ``jobs``' leases in the catalog."""
    lifecycle = LifecycleRunner(
        engine,
        events=events,
        metrics=lifecycle_metrics or LifecycleMetrics(metrics.registry),
        day_seconds=settings.lifecycle_day_seconds,
    )
    if reactor is not None:
        # Stopping waits for the timers' calls in progress: a lifecycle run ends at its next page.
        reactor.addSystemEventTrigger("before", "shutdown", lifecycle.stop)

    async def refresh_stored() -> None:
        tenants, totals = await engine.stored_by_tenant()
        metrics.tenant_label.allow(oldest_names(tenants))
        metrics.set_tenant_stored({t.name: totals.get(t.id, StoredTotals()) for t in tenants})

    def guarded(work: Callable[[], Any]) -> Callable[[], Deferred[Any]]:
        return lambda: ensureDeferred(work()).addErrback(lambda f: log_periodic_failure(log, f, "periodic work failed"))

    async def keep_headroom() -> None:
        if isinstance(engine.catalog, SQLiteCatalog):
            await engine.catalog.restore_headroom()

    async def reconcile_placements() -> None:
        # Failover placements move blobs back to their primary: here, once per data directory.
        for driver in engine.drivers.values():
            if is_reconciling(driver):
                await driver.reconcile_if_due()

    return [
        (HEALTH_PROBE_SECONDS, guarded(keep_headroom)),
        (HEALTH_PROBE_SECONDS, guarded(reconcile_placements)),
        jobs.job("garbage-sweep", settings.garbage_sweep_seconds, guarded(engine.collect_garbage)),
        jobs.job(
            "upload-expiry", UPLOAD_EXPIRY_SECONDS, guarded(lambda: engine.expire_uploads(settings.upload_expiry))
        ),
        # Gauges from one gateway only, so a sum over gateways counts each byte once.
        jobs.duty("stored-gauges", settings.usage_flush_seconds, refresh_stored, lambda: metrics.set_tenant_stored({})),
        jobs.job("usage-rollup", settings.usage_rollup_seconds, guarded(engine.rollup_usage)),
        # At start, then every lifecycle day (a timer's first call is at once).
        jobs.job("lifecycle", settings.lifecycle_day_seconds, guarded(lifecycle.run)),
    ]


def this_process(health: HealthCache, metrics: Metrics, started: float) -> WorkerStatus:
    """The single daemon process as the console's worker page shows it."""
    stat = proc_stat(os.getpid())
    return WorkerStatus(
        None,
        os.getpid(),
        "serving" if health.ready else "starting",
        0,
        time.time() - started,
        requests=requests_served(metrics.registry.collect()),
        cpu_seconds=stat[0] if stat else None,
        resident_bytes=stat[1] if stat else None,
    )


def connection_limits(settings: Settings) -> ConnectionLimits:
    return ConnectionLimits(
        header_timeout=settings.header_timeout,
        body_timeout=settings.body_timeout,
        min_body_rate=settings.min_body_rate,
        send_timeout=settings.send_timeout,
        idle_timeout=settings.idle_timeout,
        max_connections=settings.max_connections,
    )


def make_service(
    settings: Settings,
    reactor: Any = None,
    environ: Mapping[str, str] | None = None,
    notify: Notify | None = None,
) -> VaultaireService:
    """The whole daemon in one process, or (``notify`` given) one S3 worker of a supervisor.

    A worker listens with its own SO_REUSEPORT socket and leaves to its
    supervisor what must happen once per data directory: the first keys, the
    scrub of staged blobs, the ops site and the periodic sweeps.
    """
    worker = notify is not None
    if reactor is None:
        from twisted.internet import reactor as default_reactor

        reactor = default_reactor
    try:
        cors_default = cors.from_config(settings.cors_rules)
    except ValueError as e:
        raise ConfigError(str(e)) from None

    data = os.path.abspath(settings.data)
    started = time.time()
    engine = open_data_directory(
        settings, reactor, scrub_staging=not worker, rclone_role="attach" if worker else "publish"
    )
    events = EventLog(
        os.path.join(data, "events"),
        max_bytes=settings.events_max_bytes,
        rotate_daily=settings.events_rotate_daily,
    )
    metrics = Metrics(tenant_label_limit=settings.metrics_tenant_limit)
    meter = Meter(lambda rows: ensureDeferred(engine.record_traffic(rows)), metrics, time.time)
    authenticator = Authenticator(engine.credential, settings.region, settings.max_clock_skew, time.time)
    health = HealthCache(engine, {"worker_pid": os.getpid()} if worker else None, metrics)
    api = S3Api(
        engine,
        authenticator,
        events,
        metrics,
        region=settings.region,
        health_path=settings.health_path,
        version=__version__,
        started=started,
        health=health,
        domains=tuple(d.lower() for d in settings.domains),
        meter=meter,
        cors_default=cors_default,
        sse_c_plain_http=settings.sse_c_plain_http,
        encrypt_all_objects=settings.encrypt_all_objects,
        lifecycle_day_seconds=settings.lifecycle_day_seconds,
        public_buckets=settings.public_buckets,
    )

    environ = environ if environ is not None else os.environ
    top = VaultaireService(settings, engine, events, environ, reactor, health, meter, notify)
    s3_site = S3Site(
        api.resource(),
        limits=connection_limits(settings),
        on_drop=lambda reason: metrics.connections_dropped.labels(reason=reason).inc(),
        reactor=reactor,
    )
    s3_service: Any = None  # the single process's S3 listener
    try:
        backlog = listen_backlog(settings.backlog)
        spec = parse_listen(settings.listen, backlog) if worker else None
        if spec is not None:
            top.late_listener = ReusePortService(spec, s3_site, reactor)
        else:
            listen = with_backlog(settings.listen, backlog)
            s3_service = strports.service(listen, s3_site, reactor=reactor)
            s3_service.setServiceParent(top)

        # A worker and the single process drain alike: SIGTERM must not cut uploads in flight.
        def in_flight() -> float:
            return metrics.registry.get_sample_value("vaultaire_requests_in_flight") or 0.0

        top.drain = lambda: ensureDeferred(drain(s3_site, in_flight, reactor, DRAIN_SECONDS))
    except (ValueError, TypeError, KeyError) as e:
        raise ConfigError(f"bad endpoint: {e}") from None
    if not worker:  # a supervisor serves the ops site of its workers
        ops = ops_resource(metrics, version=__version__, started=started, health=health)
        ops_listener(settings, ops, reactor).setServiceParent(top)
        # The web console, signing its requests to this S3 port (port 0: the one it got).
        console = console_listener(
            settings,
            engine,
            reactor,
            lambda: bound_port(s3_service),
            lambda: settings.listen,
            metrics=metrics.registry,
            workers=lambda: [this_process(health, metrics, started)],
        )
        if console is not None:
            console.setServiceParent(top)

    probe = TimerService(HEALTH_PROBE_SECONDS, health.probe)
    probe.clock = reactor
    probe.setServiceParent(top)

    # Blobs this process dropped while the catalog was unreachable: their intents are its own,
    # so it settles them itself once the catalog answers again (a no-op otherwise).
    def retry_pending() -> Deferred[Any]:
        def failed(f: Any) -> None:
            if not f.check(CatalogUnavailable):  # still down: the next tick retries, no noise
                log.failure("settling blobs dropped during a catalog outage failed", f)

        return ensureDeferred(engine.blobs.retry_pending()).addErrback(failed)

    pending = TimerService(HEALTH_PROBE_SECONDS, retry_pending)
    pending.clock = reactor
    pending.setServiceParent(top)

    # Every process counts its own traffic and writes it (the catalog sums them),
    # and labels the same tenants in its metrics as every other process.
    async def flush_traffic() -> None:
        await meter.flush()
        # Only the first few names: a worker need not read every tenant every few seconds.
        metrics.tenant_label.allow(await engine.catalog.oldest_tenant_names(metrics.tenant_label.limit))

    flush = TimerService(
        settings.usage_flush_seconds,
        lambda: ensureDeferred(flush_traffic()).addErrback(
            lambda f: log_periodic_failure(log, f, "usage flush failed")
        ),
    )
    flush.clock = reactor
    flush.setServiceParent(top)
    if worker:
        return top  # the supervisor runs the sweeps, once for all workers
    top.jobs = DeploymentJobs(engine.catalog, metrics.registry, shared=bool(settings.catalog_url))
    for period, work in periodic_work(settings, engine, metrics, top.jobs, events, reactor=reactor):
        timer = TimerService(period, work)
        timer.clock = reactor
        top.periodic.append(timer)  # started by _boot, once the engine has
    return top
