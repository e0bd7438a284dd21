"""One place that turns a catalog setting into a catalog: SQLite by default, a shared SQLite
file or PostgreSQL by URL.

Every process that opens a catalog (the daemon, a worker, the supervisor,
``vaultaire-admin``) comes here, so they all agree on where it is.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any

from twisted.internet.interfaces import IReactorFromThreads

from vaultaire.catalog.headroom import Headroom
from vaultaire.catalog.sqlite import SQLiteCatalog
from vaultaire.config import ConfigError, redact_url
from vaultaire.sealing import SecretBox

SCHEMES = ("postgresql://", "postgres://")
SQLITE = "sqlite:///"
CATALOG_FILE = "catalog.sqlite3"


def sqlite_path(url: str | None, data_dir: str) -> str | None:
    """The SQLite file the URL names (the data directory's own when there is none); None: not SQLite."""
    if not url:
        return os.path.join(os.path.abspath(data_dir), CATALOG_FILE)
    if url.startswith(SQLITE):
        path = "/" + url[len(SQLITE) :].lstrip("/")
        if path == "/" or path.endswith("/"):
            raise ConfigError(f"catalog url {url!r} must name a file: sqlite:////srv/vaultaire/catalog.sqlite3")
        return path
    return None


def open_catalog(
    url: str | None,
    data_dir: str,
    reactor: IReactorFromThreads,
    box: SecretBox,
    clock: Callable[[], float] = time.time,
    headroom: Headroom | None = None,
    **options: Any,
) -> SQLiteCatalog:
    """The catalog ``url`` names: None (or empty) is the SQLite file in ``data_dir`` as always;
    ``sqlite:///ABSOLUTE/PATH`` one SQLite file that gateways on one machine share (the
    headroom file then lives beside it, on its filesystem); ``postgresql://...`` a PostgreSQL
    database (TLS as its sslmode says), with ``options`` ``pool_size``, ``statement_timeout``
    and ``pool_timeout`` (seconds). Not started: the caller calls ``start()``."""
    path = sqlite_path(url, data_dir)
    if path is not None:
        if url and headroom is not None:
            headroom = Headroom(os.path.join(os.path.dirname(path), "catalog.headroom"), headroom.reserve_setting)
        return SQLiteCatalog(path, reactor, box, clock=clock, headroom=headroom)
    assert url is not None
    if url.startswith(SCHEMES):
        from vaultaire.catalog.postgres import PostgresCatalog  # psycopg loads only when asked for

        return PostgresCatalog(url, reactor, box, clock=clock, **options)
    raise ConfigError(f"unknown catalog URL {redact_url(url)!r}: expected postgresql://... or sqlite:///PATH")
