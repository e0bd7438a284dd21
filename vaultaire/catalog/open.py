"""The catalog a configuration names: SQLite in the data directory, a shared SQLite file, or PostgreSQL.

Every process that opens a catalog (the daemon, a worker, the supervisor,
``vaultaire-admin``) comes here, so they all agree on where it is.
"""

from __future__ import annotations

import os
from typing import Any

from vaultaire.catalog.headroom import Headroom
from vaultaire.catalog.sqlite import SQLiteCatalog
from vaultaire.config import ConfigError, redact_url
from vaultaire.sealing import SecretBox

CATALOG_FILE = "catalog.sqlite3"
_SQLITE = "sqlite:///"


def is_shared(url: str | None) -> bool:
    """Whether gateways with other data directories may share this catalog (a URL names it)."""
    return bool(url)


def sqlite_path(url: str | None, data_dir: str) -> str | None:
    """The SQLite file the URL names (the data directory's own when there is none); None: not SQLite."""
    if not url:
        return os.path.join(os.path.abspath(data_dir), CATALOG_FILE)
    if url.startswith(_SQLITE):
        path = "/" + url[len(_SQLITE) :].lstrip("/")
        if path == "/" or path.endswith("/"):
            raise ConfigError(f"catalog url {url!r} must name a file: sqlite:////srv/vaultaire/catalog.sqlite3")
        return path
    return None


def open_catalog(
    url: str | None,
    data_dir: str,
    reactor: Any,
    box: SecretBox,
    *,
    reserve: int | None = None,
    pool_size: int = 10,
    statement_timeout: float = 30.0,
) -> SQLiteCatalog:
    """The catalog, not started yet. ``reserve`` (the free-space reserve setting) keeps a
    headroom file beside a SQLite catalog, so deletes still commit on a full disk."""
    path = sqlite_path(url, data_dir)
    if path is None:
        # The PostgreSQL backend lands in vaultaire/catalog/postgres/ (issue 17): until then
        # a postgresql URL is refused rather than silently served from a local file.
        raise ConfigError(
            f"catalog url {redact_url(str(url))!r}: this Vaultaire has no PostgreSQL catalog yet;"
            " use sqlite:///PATH for gateways on one machine, or no url for one box"
        )
    headroom = None
    if reserve is not None:
        headroom = Headroom(os.path.join(os.path.dirname(path), "catalog.headroom"), reserve)
    return SQLiteCatalog(path, reactor, box, headroom=headroom)
