"""What the single daemon and the supervisor of workers both do to start.

One data-directory bootstrap (the directory checked, the master key, the
catalog and the engine over the configured placements), one start-up guard
(a port that cannot be bound, an engine that cannot start: one line saying
why and a non-zero exit) and one way to build the ops site. ``service.py``
(the daemon, or one worker) and ``supervisor.py`` build on these.
"""

from __future__ import annotations

import hashlib
import os
import signal
import stat
import sys
import tempfile
import threading
from collections.abc import Callable, Mapping
from typing import Any

from twisted.application import strports
from twisted.application.service import MultiService, Service
from twisted.internet.defer import Deferred
from twisted.internet.error import CannotListenError
from twisted.internet.threads import deferToThreadPool
from twisted.logger import (
    FilteringLogObserver,
    Logger,
    LogLevel,
    LogLevelFilterPredicate,
    globalLogPublisher,
)
from twisted.web.http import Request
from twisted.web.resource import IResource
from twisted.web.server import Site

from vaultaire.bootstrap import BootstrapError, ensure_first_credentials
from vaultaire.catalog.cached import CachedReads
from vaultaire.catalog.headroom import Headroom
from vaultaire.catalog.interface import Catalog
from vaultaire.catalog.open import open_catalog
from vaultaire.config import ConfigError, Settings, check_shared_catalog
from vaultaire.drivers.build import build_placements
from vaultaire.encryption.keys import Keyring
from vaultaire.encryption.kms import LocalKeySource
from vaultaire.engine import Engine
from vaultaire.engine.space import SpaceGuard
from vaultaire.errors import DriverError
from vaultaire.sealing import SecretBox, master_keys

__all__ = [
    "Notify",
    "StartGuard",
    "apply_log_level",
    "build_engine",
    "cannot_listen",
    "open_data_directory",
    "ops_listener",
    "runtime_directory",
    "start_engine",
]

log = Logger()

# A worker's line to its supervisor: ("ready", "") or ("fatal", why).
Notify = Callable[[str, str], None]


def apply_log_level(level: str) -> None:
    """Filter what twistd's observers get by the configured level.

    twistd sets up its observers before our service exists, so they are
    wrapped in place rather than configured.
    """
    predicate = LogLevelFilterPredicate(defaultLogLevel=LogLevel.levelWithName(level))
    for observer in list(globalLogPublisher._observers):
        globalLogPublisher.removeObserver(observer)
        globalLogPublisher.addObserver(FilteringLogObserver(observer, [predicate]))


def cannot_listen(e: CannotListenError) -> str:
    return f"cannot listen on {e.interface or '*'}:{e.port}: {e.socketError}"


class StartGuard(MultiService):
    """A service tree that either starts serving or says why not in one line and exits non-zero.

    A daemon that cannot serve must not look healthy: a port already taken
    stops it before it drops privileges, an engine that cannot start stops it
    once the reactor runs. A worker (``notify`` set) tells its supervisor;
    the daemon and the supervisor write to the real stderr.
    """

    settings: Settings
    notify: Notify | None = None
    reactor: Any = None

    def privilegedStartService(self) -> None:
        # strports services only log a failed listen unless told to raise.
        for child in self:
            if hasattr(child, "_raiseSynchronously"):
                child._raiseSynchronously = True
        try:
            self.bind()
        except CannotListenError as e:
            self.say(cannot_listen(e))
            self.abandon()
            raise SystemExit(1) from None

    def abandon(self) -> None:
        """Undo what building the service left behind, when it never starts (a subclass's)."""

    def bind(self) -> None:
        """Open the listening ports (the children's); a subclass may do more around it."""
        super().privilegedStartService()

    def startService(self) -> None:
        if self.settings.log_level != "info":
            apply_log_level(self.settings.log_level)
        if self.notify is None:
            self.own_stop_signals()
        super().startService()

    def own_stop_signals(self) -> None:
        """SIGINT and SIGTERM stop this daemon, whatever dispositions it inherited.

        A background job of a non-interactive shell starts with SIGINT ignored,
        and the reactor only takes SIGINT over from Python's default handler:
        without this, Ctrl-C or ``kill -INT`` would do nothing. (A worker leaves
        SIGINT to its supervisor and handles SIGTERM itself.)
        """
        if threading.current_thread() is not threading.main_thread():
            return  # signal handlers can only be set from the main thread
        for signo, name in ((signal.SIGINT, "sigInt"), (signal.SIGTERM, "sigTerm")):
            handler = getattr(self.reactor, name, None)
            if handler is not None:
                signal.signal(signo, handler)

    def say(self, message: str) -> None:
        if self.notify is not None:
            self.notify("fatal", message)
        else:
            # twistd has redirected sys.stderr into its log by now: say it on the real one.
            stderr = sys.__stderr__
            if stderr is not None:
                stderr.write(f"vaultaire: {message}\n")

    def fail_start(self, message: str) -> None:
        """Stop cleanly, but exit non-zero."""
        self.say(message)
        self.reactor.addSystemEventTrigger("after", "shutdown", os._exit, 1)
        self.reactor.stop()


def _thread_runner(reactor: Any) -> Callable[..., Deferred[Any]]:
    return lambda fn, *args: deferToThreadPool(reactor, reactor.getThreadPool(), fn, *args)


def build_engine(
    settings: Settings,
    data: str,
    catalog: Catalog,
    reactor: Any,
    scrub_staging: bool,
    rclone_role: str = "private",
) -> Engine:
    """The engine over the configured placements (the daemon's, a worker's or the supervisor's).

    ``rclone_role`` (see vaultaire.drivers.rclone): "publish" for the daemon or a
    supervisor (it runs rclone once for all its workers), "attach" for a worker."""
    try:
        placements = build_placements(
            settings.drivers,
            settings.placements,
            data,
            reactor,
            scrub_staging=scrub_staging,
            reserve=settings.free_space_reserve,
            rclone_role=rclone_role,
            implicit_local=not settings.catalog_url,
        )
    except (OSError, ValueError) as e:
        raise ConfigError(f"drivers cannot be set up: {e}") from None
    run = _thread_runner(reactor)
    keys, reload = master_keys(settings, data)
    keyring = Keyring(keys[0], keys[1:], reload)
    reads = CachedReads(catalog)  # the request path's, SSE-KMS keys among them
    return Engine(
        catalog,
        placements,
        reactor,
        default_placement=settings.default_placement,
        min_part_size=settings.min_part_size,
        free_grace=settings.free_grace,
        space=SpaceGuard(data, placements, settings.free_space_reserve, run),
        # The master key that seals secret keys also wraps the data keys of encrypted blobs
        # and seals the SSE-KMS keys' material: one key hierarchy.
        keyring=keyring,
        kms=LocalKeySource(catalog, keyring, settings.region, reads=reads),
        inline_max=settings.inline_max_bytes,
        reads=reads,
    )


def open_data_directory(settings: Settings, reactor: Any, scrub_staging: bool, rclone_role: str = "private") -> Engine:
    """Check (or make) the data directory and build the engine over its catalog.

    The master key is made here, at first start, before any worker exists, so
    that every process reads the same one. ``scrub_staging`` only where no
    other process can be writing (the daemon, the supervisor; never a worker).
    """
    check_shared_catalog(settings)
    data = os.path.abspath(settings.data)
    try:
        os.makedirs(os.path.join(data, "blobs"), exist_ok=True)
    except OSError as e:
        raise ConfigError(f"data directory {data!r} cannot be created: {e.strerror}") from None
    if not os.access(data, os.W_OK):
        raise ConfigError(f"data directory {data!r} is not writable")
    keys, reload = master_keys(settings, data)
    box = SecretBox(keys[0], keys[1:], reload)
    headroom = Headroom(os.path.join(data, "catalog.headroom"), settings.free_space_reserve)
    # ``[catalog] url``: a shared catalog (one SQLite file, or PostgreSQL); else SQLite in ``data``.
    catalog = open_catalog(
        settings.catalog_url,
        data,
        reactor,
        box,
        headroom=headroom,
        pool_size=settings.catalog_pool_size,
        statement_timeout=settings.catalog_statement_timeout,
    )
    return build_engine(settings, data, catalog, reactor, scrub_staging=scrub_staging, rclone_role=rclone_role)


async def start_engine(engine: Engine, data: str, environ: Mapping[str, str], bootstrap: bool) -> str | None:
    """Start the engine (and, with ``bootstrap``, make the first keys); None, or one line saying why not."""
    try:
        await engine.start()
        if bootstrap:
            await ensure_first_credentials(engine, data, environ)
            await report_name_conflicts(engine, data)
    except (BootstrapError, DriverError) as e:
        # Bad keys in the environment, a driver that cannot work at all (an upstream bucket missing).
        return str(e)
    except Exception as e:
        log.failure("vaultaire: the engine failed to start")
        return f"the engine failed to start: {e}"
    return None


async def report_name_conflicts(engine: Engine, data: str) -> None:
    """Say once per start (by the process that bootstraps: the daemon or the supervisor) which
    bucket names several tenants hold, from before names were unique, and how to end it."""
    for name, tenants in await engine.name_conflicts():
        commands = "; ".join(
            f"vaultaire-admin --data {os.path.abspath(data)} bucket rename {tenant} {name} NEW-NAME"
            for tenant in tenants[1:]
        )
        log.warn(
            "bucket name {name!r} is held by several tenants ({tenants}): each still reaches its own by path, "
            "but the name resolves for no one else (no other tenant, no anonymous request). "
            "Give it to one of them: {commands}",
            name=name,
            tenants=", ".join(tenants),
            commands=commands,
        )


def runtime_directory(settings: Settings, environ: Mapping[str, str]) -> str:
    """This data directory's runtime directory, made (mode 0700) and checked to be ours.

    Off the data disk on purpose: the workers' metric files are memory-mapped,
    and a mapping that grows on a full filesystem is SIGBUS, not an error.
    """
    path = settings.runtime_dir
    if not path:
        # systemd gives a colon-separated list when the unit names several.
        path = environ.get("RUNTIME_DIRECTORY", "").split(":")[0]
    if not path:
        data = os.path.abspath(settings.data)
        tag = hashlib.sha256(data.encode("utf-8", "surrogateescape")).hexdigest()[:16]
        base = "/dev/shm" if os.path.isdir("/dev/shm") else tempfile.gettempdir()
        path = os.path.join(base, f"vaultaire-{os.getuid()}-{tag}")
    path = os.path.abspath(path)
    try:
        os.makedirs(path, mode=0o700, exist_ok=True)
        st = os.lstat(path)
    except OSError as e:
        raise ConfigError(f"runtime directory {path!r} cannot be created: {e.strerror}") from None
    # /dev/shm is shared by every user: refuse a directory someone else made or swapped for a link.
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.getuid() or st.st_mode & 0o022:
        raise ConfigError(f"runtime directory {path!r} must be a directory of this user, writable by no one else")
    return path


class _QuietSite(Site):
    """Scrapers and probes every few seconds would drown the access log."""

    def log(self, request: Request) -> None:
        pass


def ops_listener(settings: Settings, resource: IResource, reactor: Any) -> Service:
    """The ops port (/health, /version, /metrics) on its endpoint; not logged per request."""
    site = _QuietSite(resource)
    try:
        return strports.service(settings.ops, site, reactor=reactor)
    except (ValueError, TypeError, KeyError) as e:
        raise ConfigError(f"bad endpoint: {e}") from None
