"""`twistd vaultaire` options and service factory (named by the plugin)."""

from __future__ import annotations

import sys
from typing import Any

from twisted.python import usage

from vaultaire.config import ConfigError, build, load_file


class Options(usage.Options):
    synopsis = "[--data DIR] [--listen ENDPOINT] [--ops ENDPOINT] [--config FILE]"
    longdesc = (
        "Serve S3 over HTTP from a local data directory. Endpoints are Twisted endpoint strings "
        "(tcp:8080, ssl:8443:privateKey=key.pem:certKey=cert.pem, systemd:domain=INET:index=0). "
        "Command-line options override the config file."
    )
    optParameters = [
        ["config", "c", None, "TOML config file (see etc/vaultaire.toml)."],
        ["data", "d", None, "Data directory (catalog, blobs, events). Default: ./vaultaire-data"],
        ["listen", "l", None, "S3 endpoint. Default: tcp:8080"],
        ["ops", "o", None, "Ops endpoint (/health, /version, /metrics). Default: tcp:9100:interface=127.0.0.1"],
        ["region", "r", None, "The region this server answers as. Default: us-east-1"],
    ]


def makeService(options: Options) -> Any:
    from vaultaire.service import make_service

    try:
        file_values = load_file(options["config"]) if options["config"] else {}
        settings = build(
            file_values,
            {k: options[k] for k in ("data", "listen", "ops", "region")},
        )
        return make_service(settings)
    except ConfigError as e:
        sys.stderr.write(f"vaultaire: {e}\n")
        raise SystemExit(2) from None
