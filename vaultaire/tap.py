"""`twistd vaultaire` options and service factory (named by the plugin)."""

from __future__ import annotations

import os
import sys
from typing import Any

from attrs import evolve
from twisted.application.service import MultiService
from twisted.python import usage

from vaultaire.config import ConfigError, build, load_file, worker_count
from vaultaire.reuseport import listen_backlog, parse_listen


class Options(usage.Options):
    synopsis = "[--data DIR] [--listen ENDPOINT] [--ops ENDPOINT] [--console ENDPOINT] [--config FILE]"
    longdesc = (
        "Serve S3 over HTTP from a local data directory. Endpoints are Twisted endpoint strings "
        "(tcp:8080, ssl:8443:privateKey=key.pem:certKey=cert.pem, systemd:domain=INET:index=0). "
        "Command-line options override the config file."
    )
    optParameters = [
        ["config", "c", None, "TOML config file (see etc/vaultaire.toml)."],
        ["data", "d", None, "Data directory (catalog, blobs, events). Default: ./vaultaire-data"],
        [
            "listen",
            "l",
            None,
            "S3 endpoint. Default: tcp:8080, or tcp:8080:interface=127.0.0.1 on development keys",
        ],
        ["ops", "o", None, "Ops endpoint (/health, /version, /metrics). Default: tcp:9100:interface=127.0.0.1"],
        [
            "console",
            None,
            None,
            'Web console endpoint, "" for none. Default: tcp:9001:interface=127.0.0.1',
        ],
        ["region", "r", None, "The region this server answers as. Default: us-east-1"],
        [
            "catalog",
            None,
            None,
            "Catalog URL shared by many gateways (postgresql://USER:PASS@HOST/DB, sqlite:///PATH)."
            " Default: the SQLite file in the data directory",
        ],
        ["workers", "w", None, "S3 worker processes on the one port; 1 = a single process. Default: one per core"],
    ]

    def postOptions(self) -> None:
        if self["workers"] is not None:
            try:
                self["workers"] = int(self["workers"])
            except ValueError:
                raise usage.UsageError(f"--workers must be a number, not {self['workers']!r}") from None


def _choose_pid_file(options: Options, data: str) -> None:
    """twistd's default pid file lands in the working directory (the repository root, when
    following the README): in the foreground no pid file is needed, and a daemon's goes into
    its data directory. A --pidfile given on the command line is kept."""
    parent = getattr(options, "parent", None)
    if parent is None or parent.get("pidfile") != os.path.abspath("twistd.pid"):
        return
    if parent.get("nodaemon"):
        parent["pidfile"] = ""
        return
    from twisted.scripts._twistd_unix import checkPID

    path = os.path.join(os.path.abspath(data), "twistd.pid")  # made by the service, which is built
    checkPID(path)  # twistd checked the default one only: refuse to start twice on one data directory
    parent["pidfile"] = path


def makeService(options: Options) -> Any:
    try:
        file_values = load_file(options["config"]) if options["config"] else {}
        overrides = {k: options[k] for k in ("data", "listen", "ops", "console", "region", "workers")}
        settings = build(file_values, {**overrides, "catalog_url": options["catalog"]})
        if options["listen"] is None and "listen" not in file_values:
            # Freshly minted development keys must not face every network the host is on.
            from vaultaire.bootstrap import DEVELOPMENT_LISTEN, development_keys_expected

            if development_keys_expected(settings.data, os.environ):
                settings = evolve(settings, listen=DEVELOPMENT_LISTEN, development_loopback=True)
        count = worker_count(settings)
        try:
            spec = parse_listen(settings.listen, listen_backlog(settings.backlog)) if count > 1 else None
        except (ValueError, TypeError, KeyError) as e:
            raise ConfigError(f"bad endpoint: {e}") from None
        if count > 1 and spec is None:
            if settings.workers > 1:
                raise ConfigError(
                    f"--workers {settings.workers} needs a tcp: or ssl: listen endpoint, not {settings.listen!r};"
                    " use --workers 1"
                )
            count = 1  # one per core was only the default: a single process serves other endpoints
        if count > 1:
            assert spec is not None
            from vaultaire.supervisor import make_supervisor

            service: MultiService = make_supervisor(settings, count, spec)
        else:
            from vaultaire.service import make_service

            service = make_service(settings)
        _choose_pid_file(options, settings.data)
        return service
    except ConfigError as e:
        sys.stderr.write(f"vaultaire: {e}\n")
        raise SystemExit(2) from None
