"""Builds the service tree from settings: S3 site, ops site, engine and timers."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Mapping
from typing import Any

from twisted.application import strports
from twisted.application.internet import TimerService
from twisted.application.service import MultiService
from twisted.internet.defer import Deferred, ensureDeferred
from twisted.internet.error import CannotListenError
from twisted.logger import (
    FilteringLogObserver,
    Logger,
    LogLevel,
    LogLevelFilterPredicate,
    globalLogPublisher,
)
from twisted.web.server import Site

from vaultaire import __version__
from vaultaire.api import cors
from vaultaire.api.app import S3Api
from vaultaire.api.auth import Authenticator
from vaultaire.api.http import S3Site
from vaultaire.bootstrap import BootstrapError, ensure_first_credentials
from vaultaire.catalog.sqlite import SQLiteCatalog
from vaultaire.config import ConfigError, Settings
from vaultaire.draining import DrainingSite, drain
from vaultaire.drivers.build import build_placements
from vaultaire.engine import Engine
from vaultaire.errors import DriverError
from vaultaire.model import StoredTotals, Tenant
from vaultaire.ops.events import EventLog
from vaultaire.ops.metering import Meter
from vaultaire.ops.metrics import Metrics
from vaultaire.ops.site import ops_resource
from vaultaire.reuseport import ReusePortService, parse_listen
from vaultaire.sealing import SecretBox, load_master_key

log = Logger()

HEALTH_PROBE_SECONDS = 10.0
GARBAGE_SWEEP_SECONDS = 600.0
UPLOAD_EXPIRY_SECONDS = 3600.0  # how often unfinished uploads are checked for expiry
DRAIN_SECONDS = 10.0  # how long a stopping worker waits for its requests in flight


def apply_log_level(level: str) -> None:
    """Filter what twistd's observers get by the configured level.

    twistd sets up its observers before our service exists, so they are
    wrapped in place rather than configured.
    """
    predicate = LogLevelFilterPredicate(defaultLogLevel=LogLevel.levelWithName(level))
    for observer in list(globalLogPublisher._observers):
        globalLogPublisher.removeObserver(observer)
        globalLogPublisher.addObserver(FilteringLogObserver(observer, [predicate]))


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


async def start_engine(engine: Engine, data: str, environ: Mapping[str, str], bootstrap: bool) -> str | None:
    """Start the engine (and, with ``bootstrap``, make the first keys); None, or one line saying why not."""
    try:
        await engine.start()
        if bootstrap:
            await ensure_first_credentials(engine, data, environ)
    except (BootstrapError, DriverError) as e:
        # Bad keys in the environment, a driver that cannot work at all (an upstream bucket missing).
        return str(e)
    except Exception as e:
        log.failure("vaultaire: the engine failed to start")
        return f"the engine failed to start: {e}"
    return None


class VaultaireService(MultiService):
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
        notify: Callable[[str, str], None] | None = None,
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

    def privilegedStartService(self) -> None:
        for child in self:
            if hasattr(child, "_raiseSynchronously"):
                child._raiseSynchronously = True
        try:
            super().privilegedStartService()
        except CannotListenError as e:
            message = f"cannot listen on {e.interface or '*'}:{e.port}: {e.socketError}"
            if self.notify is not None:
                self.notify("fatal", message)
            else:
                # twistd has redirected sys.stderr into its log by now: say it on the real one.
                sys.__stderr__.write(f"vaultaire: {message}\n")
            raise SystemExit(1) from None

    def startService(self) -> None:
        if self.settings.log_level != "info":
            apply_log_level(self.settings.log_level)
        self.events.start()
        super().startService()
        self.ready = ensureDeferred(self._boot())

    async def _boot(self) -> None:
        # A worker's supervisor has made the first keys before spawning it.
        failed = await start_engine(self.engine, self.settings.data, self.environ, bootstrap=self.notify is None)
        if failed is not None:
            self._fail_start(failed)
            return
        self.health.ready = True
        await self.health.probe()
        if self.notify is not None:
            if self.late_listener is not None:
                try:
                    self.late_listener.startService()
                except CannotListenError as e:
                    self._fail_start(f"cannot listen on {e.interface or '*'}:{e.port}: {e.socketError}")
                    return
            self.notify("ready", "")
            return
        log.info(
            "Vaultaire {version} serving S3 on {listen}, ops on {ops}, data in {data}",
            version=__version__,
            listen=self.settings.listen,
            ops=self.settings.ops,
            data=os.path.abspath(self.settings.data),
        )

    def _fail_start(self, message: str) -> None:
        """Stop cleanly, but exit non-zero: a daemon that cannot serve must not look healthy."""
        if self.notify is not None:
            self.notify("fatal", message)
        else:
            sys.__stderr__.write(f"vaultaire: {message}\n")
        self.reactor.addSystemEventTrigger("after", "shutdown", os._exit, 1)
        self.reactor.stop()

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
            await self.engine.stop()
            self.events.stop()

        return ensureDeferred(after())


def build_engine(
    settings: Settings,
    data: str,
    catalog: SQLiteCatalog,
    reactor: Any,
    scrub_staging: bool,
    rclone_role: str = "private",
) -> Engine:
    """The engine over the configured placements (the daemon's, a worker's or the supervisor's).

    ``rclone_role`` (see vaultaire.drivers.rclone): "publish" for the daemon or a
    supervisor (it runs rclone once for all its workers), "attach" for a worker."""
    try:
        placements = build_placements(
            settings.drivers, settings.placements, data, reactor, scrub_staging=scrub_staging, rclone_role=rclone_role
        )
    except (OSError, ValueError) as e:
        raise ConfigError(f"drivers cannot be set up: {e}") from None
    return Engine(
        catalog,
        placements,
        reactor,
        default_placement=settings.default_placement,
        min_part_size=settings.min_part_size,
    )


def oldest_names(tenants: list[Tenant]) -> list[str]:
    return [t.name for t in sorted(tenants, key=lambda t: (t.created, t.name))]


def periodic_work(
    settings: Settings, engine: Engine, metrics: Metrics
) -> list[tuple[float, Callable[[], Deferred[Any]]]]:
    """What runs once per data directory on a timer: in the daemon, or in the supervisor of workers."""

    async def refresh_stored() -> None:
        tenants, totals = await engine.stored_by_tenant()
        metrics.tenant_label.allow(oldest_names(tenants))
        metrics.set_tenant_stored({t.name: totals.get(t.id, StoredTotals()) for t in tenants})

    def guarded(work: Callable[[], Any]) -> Callable[[], Deferred[Any]]:
        return lambda: ensureDeferred(work()).addErrback(lambda f: log.failure("periodic work failed", f))

    return [
        (GARBAGE_SWEEP_SECONDS, guarded(engine.collect_garbage)),
        (UPLOAD_EXPIRY_SECONDS, guarded(lambda: engine.expire_uploads(settings.upload_expiry))),
        (settings.usage_flush_seconds, guarded(refresh_stored)),
        (settings.usage_rollup_seconds, guarded(engine.rollup_usage)),
    ]


def make_service(
    settings: Settings,
    reactor: Any = None,
    environ: Mapping[str, str] | None = None,
    notify: Callable[[str, str], None] | None = None,
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
    try:
        os.makedirs(os.path.join(data, "blobs"), exist_ok=True)
    except OSError as e:
        raise ConfigError(f"data directory {data!r} cannot be created: {e.strerror}") from None
    if not os.access(data, os.W_OK):
        raise ConfigError(f"data directory {data!r} is not writable")

    started = time.time()
    box = SecretBox(load_master_key(settings, data, create=True))
    catalog = SQLiteCatalog(os.path.join(data, "catalog.sqlite3"), reactor, box)
    engine = build_engine(
        settings, data, catalog, reactor, scrub_staging=not worker, rclone_role="attach" if worker else "publish"
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
    )

    environ = environ if environ is not None else os.environ
    top = VaultaireService(settings, engine, events, environ, reactor, health, meter, notify)
    s3_site = DrainingSite(api.resource()) if worker else S3Site(api.resource())
    try:
        spec = parse_listen(settings.listen) if worker else None
        if spec is not None:
            top.late_listener = ReusePortService(spec, s3_site, reactor)
        else:
            strports.service(settings.listen, s3_site, reactor=reactor).setServiceParent(top)
        if isinstance(s3_site, DrainingSite):
            site = s3_site

            def in_flight() -> float:
                return metrics.registry.get_sample_value("vaultaire_requests_in_flight") or 0.0

            top.drain = lambda: ensureDeferred(drain(site, in_flight, reactor, DRAIN_SECONDS))
        if not worker:  # a supervisor serves the ops site of its workers
            ops_site = Site(ops_resource(metrics, version=__version__, started=started, health=health))
            ops_site.log = lambda request: None  # type: ignore[method-assign]
            strports.service(settings.ops, ops_site, reactor=reactor).setServiceParent(top)
    except (ValueError, TypeError, KeyError) as e:
        raise ConfigError(f"bad endpoint: {e}") from None

    probe = TimerService(HEALTH_PROBE_SECONDS, health.probe)
    probe.clock = reactor
    probe.setServiceParent(top)

    # Every process counts its own traffic and writes it (the catalog sums them),
    # and labels the same tenants in its metrics as every other process.
    async def flush_traffic() -> None:
        await meter.flush()
        # Only the first few names: a worker need not read every tenant every few seconds.
        metrics.tenant_label.allow(await engine.catalog.oldest_tenant_names(metrics.tenant_label.limit))

    flush = TimerService(
        settings.usage_flush_seconds,
        lambda: ensureDeferred(flush_traffic()).addErrback(lambda f: log.failure("usage flush failed", f)),
    )
    flush.clock = reactor
    flush.setServiceParent(top)
    if worker:
        return top  # the supervisor runs the sweeps, once for all workers
    for period, work in periodic_work(settings, engine, metrics):
        timer = TimerService(period, work)
        timer.clock = reactor
        timer.setServiceParent(top)
    return top
