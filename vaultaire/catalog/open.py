"""One place that turns a catalog setting into a catalog: SQLite by default, PostgreSQL by URL."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any

from twisted.internet.interfaces import IReactorFromThreads

from vaultaire.catalog.headroom import Headroom
from vaultaire.catalog.sqlite import SQLiteCatalog
from vaultaire.sealing import SecretBox

SCHEMES = ("postgresql://", "postgres://")


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
    ``postgresql://USER:PASS@HOST:PORT/DB?sslmode=...`` a PostgreSQL database (TLS as sslmode
    says), with ``options`` ``pool_size``, ``statement_timeout`` and ``pool_timeout`` (seconds).
    Not started: the caller calls ``start()``."""
    if not url:
        return SQLiteCatalog(os.path.join(data_dir, "catalog.sqlite3"), reactor, box, clock=clock, headroom=headroom)
    if url.startswith(SCHEMES):
        from vaultaire.catalog.postgres import PostgresCatalog  # psycopg loads only when asked for

        return PostgresCatalog(url, reactor, box, clock=clock, **options)
    raise ValueError(f"unknown catalog URL {url!r}: expected postgresql://... (none: SQLite in the data directory)")
