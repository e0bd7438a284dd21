"""The console's listener: built beside the ops site by the daemon or by the supervisor."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from twisted.application import strports
from twisted.application.service import MultiService, Service
from twisted.internet import endpoints
from twisted.logger import Logger

from vaultaire.config import ConfigError, Settings
from vaultaire.console.app import Console, ConsoleSite
from vaultaire.console.s3client import S3Client
from vaultaire.console.uploads import PART_SIZE
from vaultaire.engine import Engine
from vaultaire.ops.history import MetricsHistory, SeriesSource
from vaultaire.ops.workers import WorkerStatuses

log = Logger()

_ANY = ("", "0.0.0.0", "::")


def s3_url(description: str, port: int | None = None, loopback: bool = True) -> str:
    """The URL of an S3 endpoint string: ``loopback`` for the console's own requests (an
    address listening everywhere is reached on 127.0.0.1), else as a browser names it."""
    kind = description.split(":", 1)[0].strip().lower()
    if kind not in ("tcp", "ssl"):
        raise ConfigError(
            f'the console needs a tcp: or ssl: S3 endpoint to reach, not {description!r}; set [console] listen = ""'
        )
    args, kwargs = endpoints._parse(description)  # only splits; nothing is opened
    if port is None:
        port = int(kwargs.get("port", args[1] if len(args) > 1 else 0))
    interface = kwargs.get("interface", "")
    if interface in _ANY:
        interface = "::1" if interface == "::" else "127.0.0.1"
    host = f"[{interface}]" if ":" in interface else interface
    return f"{'https' if kind == 'ssl' else 'http'}://{host}:{port}"


class HistoryService(Service):
    """Samples the ops site's metrics for the operator's charts while the console runs."""

    def __init__(self, history: MetricsHistory, reactor: Any) -> None:
        self.history = history
        self.reactor = reactor

    def startService(self) -> None:
        super().startService()
        self.history.start(self.reactor)

    def stopService(self) -> None:
        self.history.stop()
        super().stopService()


def console_listener(
    settings: Settings,
    engine: Engine,
    reactor: Any,
    s3_port: Callable[[], int | None],
    listen: Callable[[], str],
    metrics: SeriesSource | None = None,
    workers: WorkerStatuses | None = None,
) -> Service | None:
    """The console on its endpoint, or None when ``[console] listen`` is empty.

    ``listen`` and ``s3_port`` give the S3 endpoint as it is once bound (port 0 resolved).
    ``metrics`` is the registry the ops site's /metrics renders, ``workers`` the processes
    that serve S3: both for the operator's pages."""
    if not settings.console:
        return None
    try:
        s3_url(settings.listen)
    except ConfigError as e:
        # A unix: or systemd: S3 socket: the daemon serves S3 all the same, without a console.
        log.warn("no web console: {why}", why=str(e))
        return None

    def base() -> str:
        return s3_url(listen(), s3_port())

    def public() -> str:
        return settings.console_s3_url.rstrip("/") or base()

    client = S3Client(base, public, settings.region, time.time)
    # Sampled only for an operator, who alone sees the charts.
    history = (
        MetricsHistory(metrics, time.time, settings.console_metrics_seconds)
        if metrics is not None and settings.console_admin_key
        else None
    )
    console = Console(
        engine,
        client,
        public,
        time.time,
        price_per_tb_month=settings.price_per_tb_month,
        session_seconds=settings.console_session_seconds,
        operator=(settings.console_admin_key, settings.console_admin_secret) if settings.console_admin_key else None,
        # Parts as big as the server asks of every part but the last.
        part_size=max(PART_SIZE, settings.min_part_size),
        history=history,
        workers=workers,
    )
    site = ConsoleSite(console)
    try:
        listener = strports.service(settings.console, site, reactor=reactor)
    except (ValueError, TypeError, KeyError) as e:
        raise ConfigError(f"bad console endpoint: {e}") from None
    if history is None:
        return listener
    both = MultiService()
    listener.setServiceParent(both)
    HistoryService(history, reactor).setServiceParent(both)
    return both


def bound_port(service: Any) -> int | None:
    """The port a strports service listens on once bound (its endpoint may have said 0)."""
    waiting = getattr(service, "_waitingForPort", None)
    port = getattr(waiting, "result", None)
    host = getattr(port, "getHost", None)
    return int(host().port) if host is not None else None
