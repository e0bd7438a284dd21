"""Builds the service tree from settings: S3 site, ops site, engine and timers."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Mapping
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
from vaultaire.api.app import S3Api
from vaultaire.api.auth import Authenticator
from vaultaire.api.http import S3Site
from vaultaire.bootstrap import BootstrapError, ensure_first_credentials
from vaultaire.catalog.sqlite import SQLiteCatalog
from vaultaire.config import ConfigError, Settings
from vaultaire.drivers.build import build_placements
from vaultaire.engine import Engine
from vaultaire.errors import DriverError
from vaultaire.ops.events import EventLog
from vaultaire.ops.metrics import Metrics
from vaultaire.ops.site import ops_resource

log = Logger()

HEALTH_PROBE_SECONDS = 10.0
GARBAGE_SWEEP_SECONDS = 600.0
UPLOAD_EXPIRY_SECONDS = 3600.0  # how often unfinished uploads are checked for expiry


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

    def __init__(self, engine: Engine, metrics: Metrics | None = None) -> None:
        self._engine = engine
        self._metrics = metrics
        self.last: dict[str, object] = {"status": "starting"}
        # Until the engine has started and the first keys exist, the daemon is not ready.
        self.ready = False

    def probe(self) -> Deferred[None]:
        async def run() -> None:
            self.last = await self._engine.health()
            drivers = self.last.get("drivers")
            if self._metrics is not None and isinstance(drivers, Mapping):
                self._metrics.observe_drivers(drivers)

        return ensureDeferred(run()).addErrback(lambda f: log.failure("health probe failed", f))

    def __call__(self) -> Mapping[str, object]:
        return self.last if self.ready else {"status": "starting"}


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
    ) -> None:
        super().__init__()
        self.settings = settings
        self.engine = engine
        self.events = events
        self.environ = environ
        self.reactor = reactor
        self.health = health
        self.ready: Deferred[None] | None = None

    def privilegedStartService(self) -> None:
        for child in self:
            if hasattr(child, "_raiseSynchronously"):
                child._raiseSynchronously = True
        try:
            super().privilegedStartService()
        except CannotListenError as e:
            # twistd has redirected sys.stderr into its log by now: say it on the real one.
            sys.__stderr__.write(f"vaultaire: cannot listen on {e.interface or '*'}:{e.port}: {e.socketError}\n")
            raise SystemExit(1) from None

    def startService(self) -> None:
        if self.settings.log_level != "info":
            apply_log_level(self.settings.log_level)
        self.events.start()
        super().startService()
        self.ready = ensureDeferred(self._boot())

    async def _boot(self) -> None:
        try:
            await self.engine.start()
            await ensure_first_credentials(self.engine, self.settings.data, self.environ)
        except BootstrapError as e:
            self._fail_start(str(e))
            return
        except DriverError as e:
            # A driver that cannot work at all (an upstream bucket missing): one clear line.
            self._fail_start(str(e))
            return
        except Exception as e:
            log.failure("vaultaire: the engine failed to start")
            self._fail_start(f"the engine failed to start: {e}")
            return
        self.health.ready = True
        await self.health.probe()
        log.info(
            "Vaultaire {version} serving S3 on {listen}, ops on {ops}, data in {data}",
            version=__version__,
            listen=self.settings.listen,
            ops=self.settings.ops,
            data=os.path.abspath(self.settings.data),
        )

    def _fail_start(self, message: str) -> None:
        """Stop cleanly, but exit non-zero: a daemon that cannot serve must not look healthy."""
        sys.__stderr__.write(f"vaultaire: {message}\n")
        self.reactor.addSystemEventTrigger("after", "shutdown", os._exit, 1)
        self.reactor.stop()

    def stopService(self) -> Deferred[None]:
        d = super().stopService()

        async def after() -> None:
            await d
            await self.engine.stop()
            self.events.stop()

        return ensureDeferred(after())


def make_service(settings: Settings, reactor: Any = None, environ: Mapping[str, str] | None = None) -> VaultaireService:
    if reactor is None:
        from twisted.internet import reactor as default_reactor

        reactor = default_reactor
    data = os.path.abspath(settings.data)
    try:
        os.makedirs(os.path.join(data, "blobs"), exist_ok=True)
    except OSError as e:
        raise ConfigError(f"data directory {data!r} cannot be created: {e.strerror}") from None
    if not os.access(data, os.W_OK):
        raise ConfigError(f"data directory {data!r} is not writable")

    started = time.time()
    catalog = SQLiteCatalog(os.path.join(data, "catalog.sqlite3"), reactor)
    try:
        placements = build_placements(settings.drivers, settings.placements, data, reactor)
    except (OSError, ValueError) as e:
        raise ConfigError(f"drivers cannot be set up: {e}") from None
    engine = Engine(
        catalog,
        placements,
        reactor,
        default_placement=settings.default_placement,
        min_part_size=settings.min_part_size,
    )
    events = EventLog(
        os.path.join(data, "events"),
        max_bytes=settings.events_max_bytes,
        rotate_daily=settings.events_rotate_daily,
    )
    metrics = Metrics()
    authenticator = Authenticator(engine.credential, settings.region, settings.max_clock_skew, time.time)
    health = HealthCache(engine, metrics)
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
    )

    environ = environ if environ is not None else os.environ
    top = VaultaireService(settings, engine, events, environ, reactor, health)
    s3_site = S3Site(api.resource())
    try:
        strports.service(settings.listen, s3_site, reactor=reactor).setServiceParent(top)
        ops_site = Site(ops_resource(metrics, version=__version__, started=started, health=health))
        ops_site.log = lambda request: None  # type: ignore[method-assign]
        strports.service(settings.ops, ops_site, reactor=reactor).setServiceParent(top)
    except (ValueError, TypeError, KeyError) as e:
        raise ConfigError(f"bad endpoint: {e}") from None

    probe = TimerService(HEALTH_PROBE_SECONDS, health.probe)
    probe.clock = reactor
    probe.setServiceParent(top)
    sweep = TimerService(GARBAGE_SWEEP_SECONDS, lambda: ensureDeferred(engine.collect_garbage()))
    sweep.clock = reactor
    sweep.setServiceParent(top)
    expiry = TimerService(UPLOAD_EXPIRY_SECONDS, lambda: ensureDeferred(engine.expire_uploads(settings.upload_expiry)))
    expiry.clock = reactor
    expiry.setServiceParent(top)
    return top
